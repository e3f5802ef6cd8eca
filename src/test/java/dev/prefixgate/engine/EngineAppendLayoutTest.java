package dev.prefixgate.engine;

import java.nio.file.Path;

/**
 * {@link EngineSlotLayoutTest}'s tests on the committed append graph ({@code
 * trainer/fixtures/tiny-bloom-append}, {@code prefixgate_trainer.slot_graph --attention append}):
 * past is the slots' arena, read once by standard ops, and the engine writes each run's new columns
 * into the slots itself.
 */
class EngineAppendLayoutTest extends EngineSlotLayoutTest {
  @Override
  Path graph() {
    return Path.of("trainer", "fixtures", "tiny-bloom-append");
  }

  @Override
  GraphContract.KvLayout layout() {
    return GraphContract.KvLayout.APPEND;
  }
}
