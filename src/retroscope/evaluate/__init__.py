"""retroscope.evaluate: scoring a run on a dataset split (:mod:`.report`) and printing what
was measured (:mod:`.console`)."""
