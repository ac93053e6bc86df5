"""retroscope.explain: which pixels of an input a regression run's answer rests on.

``retroscope explain RUN FILES --method occlusion|gradcam|lime`` writes, per input, an
attribution map of one target column's mean output over the network's input (NPY) and a
figure of the input next to it (PNG). The maps come from captum 0.9:

- :mod:`.methods`: ``Occlusion``, ``LayerGradCam`` on the last convolution, ``Lime`` with a
  ridge on superpixels, for any module with one scalar output per image;
- :mod:`.maps`: a run's network reduced to one target column (:func:`attribute`);
- :mod:`.figure`: the input and its map side by side (:func:`attribution_plot`);
- :mod:`.files`: experimental files read as ``retroscope predict`` reads them, and the
  outputs written (:func:`explain_files`).
"""

from retroscope.explain.files import explain_files
from retroscope.explain.maps import attribute
from retroscope.explain.methods import METHODS, attribute_model

__all__ = ["METHODS", "attribute", "attribute_model", "explain_files"]
