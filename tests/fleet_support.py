"""The fleet tests' small real models (``modelverse.bench.toy_models``), also loadable by the
spec ``py:fleet_support:NAME`` in workers that have this directory on PYTHONPATH."""

from modelverse.bench.toy_models import (  # noqa: F401  (the tests' names for them)
    ConvEncoder,
    ConvGenerator,
    RaisingGenerator,
    WrongShapeGenerator,
    conv_encoder,
    conv_generator,
    raising_generator,
    wrong_shape_generator,
)

ENCODER_SPEC = "py:fleet_support:conv_encoder"
