"""The subcommands of ``triton-rerank``, one module each: ``add_arguments(parser)`` declares its
flags and ``run(args) -> int`` runs it. Heavy imports happen inside ``run``."""
