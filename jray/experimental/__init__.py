"""Ray's ``ray.experimental`` names that programs reach for (``tqdm_ray``)."""
