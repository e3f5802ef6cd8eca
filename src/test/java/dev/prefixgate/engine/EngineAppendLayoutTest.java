package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

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

  /**
   * Every step reads the whole arena, so it follows the live rows: a 700-token row makes it wide,
   * and once that row has left, the next row runs in an arena re-made at its own size, exactly.
   */
  @Test
  void theArenaShrinksWhenTheWideRowLeavesAndTheNextRowStaysExact() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "initech/2";
    ModelConfig cfg = model.config();
    long perToken = 2L * cfg.nLayer() * cfg.nHead() * cfg.headDim() * Float.BYTES;
    try (Engine e = engine(EngineOptions.defaults())) {
      e.idleReleaseAfter(Duration.ofHours(1)); // only the shrink may hand memory back
      Gate wide = new Gate(2);
      e.submit(
          new GenerationRequest(
              "wide", null, Fixtures.longPrompt(700), SamplingParams.greedy(4).withIgnoreEos(true)),
          wide);
      wide.awaitHeld();
      long whileWide = e.stats().memoryBytes();
      wide.open();
      assertEquals(FinishReason.LENGTH, wide.await().reason());
      Gate next = new Gate(1);
      e.submit(golden(id, n), next);
      next.awaitHeld(); // past the step that dropped the wide row
      long afterwards = e.stats().memoryBytes();
      next.open();
      next.await();
      assertArrayEquals(goldenIds(id, n), next.idArray());
      assertTrue(
          whileWide - afterwards >= 600 * perToken,
          "arena re-made at the new row's size: " + whileWide + " -> " + afterwards + " bytes");
    }
  }
}
