"""promolake: e-commerce behaviour data -> personalized promotion decisions on the lakehouse.

Data flows down the sub-packages: landing (contract, synthetic world, importers) -> bronze
(raw records) -> silver (typed, validated, de-duplicated, quarantine) -> gold -> models ->
assignments. `common` holds configuration, the lake catalog and the Spark session.
"""

__version__ = "0.1.0"
