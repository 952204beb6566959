"""Learning graphs on Lava's learning engine (plasticity on, no torch): HLOP's lateral Hebbian neurons
(:mod:`.oja`) and the CA3 memory's STDP (:mod:`.ca3`)."""
