"""InferenceService rollouts (KServe v1beta1): numbered revisions, canary splits across config changes, and
the record of which revision is rolled out, kept where a restart finds it."""
