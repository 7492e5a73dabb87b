"""The task definitions of the fluid suite, one module per scene family (see `physim.envs.fluid.registry`)."""
