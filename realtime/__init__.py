"""The live engine: sources, segmentation, health, privacy, the session and its front ends."""
