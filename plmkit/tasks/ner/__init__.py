"""Named-entity recognition (token classification): tag schemes, tagged files, sub-word features, scores, the task entry."""
