"""Learning graphs on Lava's learning engine (plasticity on): HLOP's lateral Hebbian neurons (:mod:`.oja`)."""
