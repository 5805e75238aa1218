"""The artifact contract: the bottom layer that runtimes and exporters both read.

What an exported artifact is (its manifest, :mod:`.manifest`; its folder and how it is opened, :mod:`.folder`),
which formats exist and what each knows about itself (:mod:`.formats`), the module every artifact computes
(:mod:`.module`), the one numeric comparison of features (:mod:`.compare`) and the seeded inputs every check runs
on (:mod:`.inputs`). Nothing here imports a runtime or an exporter.
"""
