"""The entity partitions: one per attraction, added as entity codes appear in the facts."""

import dagster as dg

entity_partitions = dg.DynamicPartitionsDefinition(name="entity")
