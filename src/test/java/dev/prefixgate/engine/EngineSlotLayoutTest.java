package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * The engine on the committed slot-layout graph ({@code trainer/fixtures/tiny-bloom-slots}, the
 * demo weights rebuilt by {@code prefixgate_trainer.slot_graph} with GroupQueryAttention): each row
 * keeps its KV in a fixed slot and ONNX Runtime writes new columns in place. Every golden must stay
 * token-exact alone, decoded together with rows joining and leaving at different steps, with
 * prompts cut into several runs, and while the arena grows under a running row. A {@link Gate}
 * freezes the engine wherever a test needs a given state; nothing depends on timing. {@link
 * EngineAppendLayoutTest} runs the same tests on the append graph.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class EngineSlotLayoutTest {
  BloomModel model;

  /** The committed graph under test. */
  Path graph() {
    return Path.of("trainer", "fixtures", "tiny-bloom-slots");
  }

  GraphContract.KvLayout layout() {
    return GraphContract.KvLayout.SLOTS;
  }

  @BeforeAll
  void load() {
    model = BloomModel.load(graph(), EngineOptions.defaults().withIntraOpThreads(1));
  }

  @AfterAll
  void close() {
    if (model != null) model.close();
  }

  Engine engine(EngineOptions o) {
    return new Engine(model, o.withIntraOpThreads(1));
  }

  static GenerationRequest golden(String id, int n) {
    JsonNode c = Fixtures.goldenCase(id);
    return new GenerationRequest(
        "t-" + id,
        Fixtures.prefixOf(c),
        Fixtures.ints(c.get("prompt_ids")),
        SamplingParams.greedy(n).withIgnoreEos(true));
  }

  static int[] goldenIds(String id, int n) {
    return Arrays.copyOf(Fixtures.ints(Fixtures.goldenCase(id).get("new_ids")), n);
  }

  @Test
  void theContractFindsTheSlotLayout() {
    assertEquals(layout(), model.contract().kvLayout());
    assertEquals(GraphContract.LogitsLayout.LAST_POSITION, model.contract().logitsLayout());
    assertEquals(GraphContract.KvLayout.CONCAT, Fixtures.model().contract().kvLayout());
  }

  @Test
  void aloneEachCaseIsExactAndItsFirstLogprobMatchesTheGoldenLogits() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    try (Engine e = engine(EngineOptions.defaults())) {
      for (String id : Fixtures.caseIds()) {
        Collector c = new Collector();
        GenerationRequest g = golden(id, n);
        e.submit(
            new GenerationRequest(
                g.tenant(),
                g.prefix(),
                g.promptIds(),
                new SamplingParams(n, 0, 0, 1, 1, null, List.of(), true, true)),
            c);
        c.await();
        assertArrayEquals(goldenIds(id, n), c.idArray(), id);
        JsonNode logits = Fixtures.goldenLogits().get(id);
        double max = Double.NEGATIVE_INFINITY;
        for (JsonNode x : logits) max = Math.max(max, x.asDouble());
        double sum = 0;
        for (JsonNode x : logits) sum += Math.exp(x.asDouble() - max);
        double expected = logits.get(c.ids.get(0)).asDouble() - max - Math.log(sum);
        assertEquals(expected, c.logprobs.get(0), 1e-3, id + ": first token's logprob");
      }
    }
  }

  /** Back to back, rows of different lengths leave at different steps and are compacted. */
  @Test
  void rowsJoiningAndLeavingAtDifferentStepsStayExact() {
    int max = Fixtures.golden().get("max_new_tokens").asInt();
    for (EngineOptions o :
        List.of(
            EngineOptions.defaults(),
            EngineOptions.defaults().withMaxPrefillTokens(8),
            EngineOptions.defaults().withMaxBatchRows(5))) {
      try (Engine e = engine(o)) {
        List<Collector> outs = new ArrayList<>();
        List<Integer> lengths = new ArrayList<>();
        List<String> ids = Fixtures.caseIds();
        for (int i = 0; i < ids.size(); i++) {
          int n = 3 + (i * 7) % (max - 2);
          Collector c = new Collector();
          e.submit(golden(ids.get(i), n), c);
          outs.add(c);
          lengths.add(n);
        }
        for (int i = 0; i < ids.size(); i++) {
          assertEquals(FinishReason.LENGTH, outs.get(i).await().reason());
          assertArrayEquals(
              goldenIds(ids.get(i), lengths.get(i)), outs.get(i).idArray(), ids.get(i) + " " + o);
        }
      }
    }
  }

  /** The arena cannot grow for a newcomer: only the newcomer fails, the running row goes on. */
  @Test
  void anAllocationFailureWhenTheArenaGrowsFailsOnlyTheNewcomer() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "globex/1";
    try (Engine e = engine(EngineOptions.defaults())) {
      Gate running = new Gate(2);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      ModelConfig cfg = model.config();
      long rowLayerBytes = 600L * cfg.nHead() * cfg.headDim() * Float.BYTES;
      e.memory().injectFailureAbove(rowLayerBytes); // the grown arena's first layer is larger
      Collector big = new Collector();
      e.submit(
          new GenerationRequest("big", null, Fixtures.longPrompt(600), SamplingParams.greedy(4)),
          big);
      running.open();
      Completion failed = big.await();
      assertEquals(FinishReason.ERROR, failed.reason());
      assertTrue(failed.error().contains("not enough engine memory"), failed.error());
      assertEquals(0, big.count);
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is untouched");
      e.memory().injectFailureAbove(Long.MAX_VALUE);
      Collector again = new Collector();
      e.submit(
          new GenerationRequest(
              "big", null, Fixtures.longPrompt(600), SamplingParams.greedy(4).withIgnoreEos(true)),
          again);
      assertEquals(FinishReason.LENGTH, again.await().reason());
    }
  }

  /**
   * A 700-token prompt joins a running row: the arena grows (the running row's live columns are
   * copied into the wider slots), the prompt goes in 16 tokens per decode step, and both equal what
   * they give alone.
   */
  /** The chunks of a long prompt shrink as its past grows, on this layout too (exact). */
  @Test
  void prefillChunksShrinkAsTheirPastGrows() {
    EngineAdmissionTest.assertPrefillChunksShrinkAsTheirPastGrows(this::engine);
  }

  @Test
  void aLongPromptJoiningARunningRowGrowsTheArenaAndBothStayExact() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "acme/0";
    GenerationRequest longReq =
        new GenerationRequest(
            "long",
            Fixtures.adapter("globex").kv(),
            Fixtures.longPrompt(700),
            SamplingParams.greedy(12).withIgnoreEos(true));
    try (Engine e = engine(EngineOptions.defaults().withPrefillStepTokens(16))) {
      Collector alone = new Collector();
      e.submit(longReq, alone);
      alone.await();
      e.idleReleaseAfter(java.time.Duration.ZERO); // the next request starts from a small arena
      long deadline = System.nanoTime() + 30_000_000_000L;
      while (e.stats().memoryBytes() > 0 && System.nanoTime() < deadline) Thread.onSpinWait();
      assertEquals(0, e.stats().memoryBytes());
      e.idleReleaseAfter(java.time.Duration.ofHours(1)); // and keeps what it grows to
      Gate running = new Gate(2);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      long small = e.stats().memoryBytes();
      Collector joined = new Collector();
      e.submit(longReq, joined);
      running.open();
      assertEquals(FinishReason.LENGTH, joined.await().reason());
      assertEquals(alone.ids, joined.ids);
      running.await();
      assertArrayEquals(goldenIds(id, n), running.idArray());
      assertTrue(e.stats().memoryBytes() > small, "the arena grew for the long prompt");
    }
  }
}
