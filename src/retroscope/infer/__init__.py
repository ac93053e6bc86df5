"""retroscope.infer: answers for experimental files from a trained run (:mod:`.batch`)."""
