"""The bundled zoo: real generative models that ship with the project, and real held-out images.

from modelverse import zoo
entries = zoo.bundled_manifest()              # list[ZooEntry]: .metadata, .query_text, .data
gen = zoo.load_generator("fashion-dcgan-sneaker", device="cpu")   # cached per process
images = gen.sample(500, seed=0)              # uint8 (500, 28, 28, 3)
real = zoo.heldout_images_for("fashion-dcgan-sneaker")      # held-out sneakers, uint8 RGB
real = zoo.heldout_images("animal-shape", "zebra", limit=20)
"""

from modelverse.zoo.heldout import heldout_images, heldout_images_for
from modelverse.zoo.loader import ZooWeightsMissingError, load_generator
from modelverse.zoo.manifest import ZooEntry, bundled_manifest, get_entry

__all__ = [
    "ZooEntry",
    "ZooWeightsMissingError",
    "bundled_manifest",
    "get_entry",
    "heldout_images",
    "heldout_images_for",
    "load_generator",
]
