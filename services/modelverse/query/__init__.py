"""Turning what a user asks (text, images, sketches, vectors) into scored query parts."""
