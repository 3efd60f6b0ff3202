"""Teacher backends behind one async interface; look them up through `synthloop.registry.TEACHERS`."""
