package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Admission under pressure: memory that runs out during a prefill, memory planned at admission,
 * long prompts joining a running batch, and a tenant flood. Every test freezes the engine with a
 * {@link Gate} where it needs a given state; nothing depends on timing.
 */
class EngineAdmissionTest {
  private static Engine engine(EngineOptions o) {
    return new Engine(Fixtures.model(), o.withIntraOpThreads(1));
  }

  private static GenerationRequest golden(String id, int n) {
    JsonNode c = Fixtures.goldenCase(id);
    return new GenerationRequest(
        "t-" + id,
        Fixtures.prefixOf(c),
        Fixtures.ints(c.get("prompt_ids")),
        SamplingParams.greedy(n).withIgnoreEos(true));
  }

  private static int[] goldenIds(String id, int n) {
    return Arrays.copyOf(Fixtures.ints(Fixtures.goldenCase(id).get("new_ids")), n);
  }

  private static String adapterCase() {
    for (String id : Fixtures.caseIds()) {
      if (Fixtures.prefixOf(Fixtures.goldenCase(id)) != null) return id;
    }
    throw new AssertionError("golden.json has no adapter case");
  }

  private static String baseCase() {
    for (String id : Fixtures.caseIds()) {
      if (Fixtures.prefixOf(Fixtures.goldenCase(id)) == null) return id;
    }
    throw new AssertionError("golden.json has no base-model case");
  }

  @Test
  void anAllocationFailureDuringPrefillFailsOnlyTheNewcomers() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = adapterCase();
    try (Engine e = engine(EngineOptions.defaults())) {
      Gate running = new Gate(2);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      // The running row's buffers exist; a 600-token prefill needs far larger ones. Fail every
      // allocation above the running row's needs, as the JVM does when direct memory runs out.
      ModelConfig cfg = Fixtures.model().config();
      long promptKvBytes = 600L * cfg.nHead() * cfg.headDim() * Float.BYTES;
      e.memory().injectFailureAbove(promptKvBytes / 2);
      Collector big = new Collector();
      e.submit(
          new GenerationRequest("big", null, Fixtures.longPrompt(600), SamplingParams.greedy(4)),
          big);
      running.open();
      Completion failed = big.await();
      assertEquals(FinishReason.ERROR, failed.reason());
      assertTrue(failed.error().contains("not enough engine memory"), failed.error());
      assertTrue(failed.error().contains("Cannot reserve"), failed.error());
      assertEquals(0, big.count);
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is untouched");
      // Memory back: the same prompt now runs.
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
   * The concat layout's arenas grow by the whole batch's KV when a 600-token row joins a running
   * one. In reserved regions that only counts the larger capacity: nothing is re-made; as direct
   * buffers every growth is a new buffer. Both rows are exact either way.
   */
  @Test
  void arenasInReservedRegionsGrowWithoutBeingReMade() {
    org.junit.jupiter.api.Assumptions.assumeTrue(ReservedRegion.available());
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = adapterCase();
    GenerationRequest wide =
        new GenerationRequest(
            "wide", null, Fixtures.longPrompt(600), SamplingParams.greedy(4).withIgnoreEos(true));
    List<Integer> wideIds = null;
    for (boolean regions : new boolean[] {true, false}) {
      try (Engine e = engine(EngineOptions.defaults())) {
        e.reservedRegions(regions);
        Gate running = new Gate(2);
        e.submit(golden(id, n), running);
        running.awaitHeld();
        Gate joined = new Gate(2);
        e.submit(wide, joined);
        running.open();
        joined.awaitHeld(); // it has joined the running row and decoded beside it
        long remakes = e.stats().kvRemakes();
        joined.open();
        assertEquals(FinishReason.LENGTH, running.await().reason());
        assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is exact");
        joined.await();
        if (wideIds == null) wideIds = joined.ids;
        assertEquals(wideIds, joined.ids, "the wide row, regions " + regions);
        if (regions) assertEquals(0, remakes, "grown in place");
        else assertTrue(remakes > 0, "direct buffers are re-made to grow: " + remakes);
      }
    }
  }

  @Test
  void buffersOutliveShortGapsAndAreHandedBackOnceIdle() throws InterruptedException {
    String id = adapterCase();
    try (Engine e = engine(EngineOptions.defaults())) {
      e.idleReleaseAfter(Duration.ofHours(1));
      for (int i = 0; i < 2; i++) {
        Collector c = new Collector();
        e.submit(golden(id, 4), c);
        assertEquals(FinishReason.LENGTH, c.await().reason());
        // The batch is empty now, but not for long enough: the buffers stay for the next burst.
        assertTrue(e.stats().memoryBytes() > 0, "buffers kept through a short gap");
      }
      e.idleReleaseAfter(Duration.ZERO);
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (e.stats().memoryBytes() > 0 && System.nanoTime() < deadline) Thread.onSpinWait();
      assertEquals(0, e.stats().memoryBytes(), "an idle engine holds no buffers");
      Collector after = new Collector();
      e.submit(golden(id, 4), after);
      assertEquals(FinishReason.LENGTH, after.await().reason());
      assertArrayEquals(goldenIds(id, 4), after.idArray(), "re-made buffers give the same tokens");
    }
  }

  @Test
  void aRequestThatCanNeverFitIsRefusedAndOneThatCannotFitNowWaits() {
    int prefill = 1024;
    EngineOptions plain = EngineOptions.defaults().withMaxPrefillTokens(prefill);
    GenerationRequest first900 =
        new GenerationRequest(
            "a", null, Fixtures.longPrompt(900), SamplingParams.greedy(80).withIgnoreEos(true));
    long budget;
    try (Engine probe = engine(plain)) {
      // Room for one such row (and its prefill), not for two.
      long one = probe.plannedBytes(1, first900.reservedTokens(), first900);
      long two = probe.plannedBytes(2, first900.reservedTokens(), first900);
      budget = (one + two) / 2;
    }
    EngineOptions o = plain.withMemoryBudgetBytes(budget);
    try (Engine e = engine(o)) {
      IllegalArgumentException never =
          assertThrows(
              IllegalArgumentException.class,
              () ->
                  e.submit(
                      new GenerationRequest(
                          "a", null, Fixtures.longPrompt(1500), SamplingParams.greedy(100)),
                      new Collector()));
      assertTrue(never.getMessage().contains("engine's budget"), never.getMessage());
      Gate first = new Gate(1);
      e.submit(first900, first);
      first.awaitHeld();
      boolean[] firstDoneWhenSecondStarted = {false};
      Collector second =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              // Engine thread: an exact snapshot.
              if (count == 0) firstDoneWhenSecondStarted[0] = first.done.isDone();
              super.onToken(tokenId, piece, logprob);
            }
          };
      e.submit(
          new GenerationRequest("b", null, Fixtures.longPrompt(900), SamplingParams.greedy(8)),
          second);
      first.open();
      assertEquals(FinishReason.LENGTH, first.await().reason());
      assertEquals(FinishReason.LENGTH, second.await().reason());
      assertTrue(firstDoneWhenSecondStarted[0], "the second row waited for memory");
      assertTrue(e.stats().memoryBytes() <= budget);
    }
  }

  /**
   * One prefill batch with a base-model row (P=0) whose prompt is shorter than its neighbours',
   * joining a running row: every row equals its golden.
   */
  @Test
  void aShortBaseRowPrefilledWithLongerAdapterRowsStaysExact() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String base = null;
    for (String id : Fixtures.caseIds()) {
      JsonNode c = Fixtures.goldenCase(id);
      if (Fixtures.prefixOf(c) != null) continue;
      if (base == null
          || c.get("prompt_ids").size() < Fixtures.goldenCase(base).get("prompt_ids").size())
        base = id;
    }
    List<String> ids = new ArrayList<>(List.of(base));
    for (String id : Fixtures.caseIds()) {
      JsonNode c = Fixtures.goldenCase(id);
      if (Fixtures.prefixOf(c) != null
          && c.get("prompt_ids").size() > Fixtures.goldenCase(base).get("prompt_ids").size()
          && ids.size() < 4) ids.add(id);
    }
    assertTrue(ids.size() > 1, "golden.json needs adapter cases longer than " + base);
    try (Engine e = engine(EngineOptions.defaults())) {
      String runningId = ids.get(ids.size() - 1);
      Gate running = new Gate(3);
      e.submit(golden(runningId, n), running);
      running.awaitHeld();
      List<Collector> outs = new ArrayList<>();
      for (String id : ids) {
        Collector c = new Collector();
        e.submit(golden(id, n), c);
        outs.add(c);
      }
      running.open(); // all of them are admitted into one prefill at the next iteration
      running.await();
      assertArrayEquals(goldenIds(runningId, n), running.idArray(), runningId);
      for (int i = 0; i < ids.size(); i++) {
        outs.get(i).await();
        assertArrayEquals(goldenIds(ids.get(i), n), outs.get(i).idArray(), ids.get(i));
      }
    }
  }

  /** A long prompt joins a running batch: both equal what they give alone. */
  @Test
  void aLongPromptJoiningARunningBatchEqualsItselfAlone() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = baseCase();
    int[] prompt = Fixtures.longPrompt(700);
    GenerationRequest longReq =
        new GenerationRequest(
            "long",
            Fixtures.adapter(Fixtures.goldenCase(adapterCase()).get("adapter").asText()).kv(),
            prompt,
            SamplingParams.greedy(12).withIgnoreEos(true));
    try (Engine e = engine(EngineOptions.defaults())) {
      Collector alone = new Collector();
      e.submit(longReq, alone);
      alone.await();
      Gate running = new Gate(4);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      Collector joined = new Collector();
      e.submit(longReq, joined);
      running.open();
      assertEquals(FinishReason.LENGTH, joined.await().reason());
      assertEquals(alone.ids, joined.ids);
      running.await();
      assertArrayEquals(goldenIds(id, n), running.idArray());
    }
  }

  /**
   * While a long prompt is prefilled, the running row gets one token per prefill run: the prompt
   * goes in at most prefill_step_tokens columns per decode step.
   */
  @Test
  void runningRowsKeepEmittingWhileALongPromptIsPrefilled() {
    int step = 64;
    int promptLen = 700;
    int runs = (promptLen + step - 1) / step;
    try (Engine e = engine(EngineOptions.defaults().withPrefillStepTokens(step))) {
      Gate running = new Gate(2);
      e.submit(
          new GenerationRequest(
              "a",
              null,
              Fixtures.longPrompt(10),
              SamplingParams.greedy(runs + 20).withIgnoreEos(true)),
          running);
      running.awaitHeld();
      int[] runningTokensAtFirstToken = {-1};
      Collector longOne =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              if (count == 0) runningTokensAtFirstToken[0] = running.count; // engine thread
              super.onToken(tokenId, piece, logprob);
            }
          };
      e.submit(
          new GenerationRequest(
              "b",
              null,
              Fixtures.longPrompt(promptLen),
              SamplingParams.greedy(4).withIgnoreEos(true)),
          longOne);
      running.open();
      assertEquals(FinishReason.LENGTH, longOne.await().reason());
      assertEquals(FinishReason.LENGTH, running.await().reason());
      // One decode step after each of the first runs-1 runs (the last run joins, then decodes).
      assertTrue(
          runningTokensAtFirstToken[0] >= 2 + runs - 1,
          "running row had " + runningTokensAtFirstToken[0] + " tokens after " + runs + " runs");
    }
  }

  /**
   * The step budget counts a column by its past: the chunks of a long prompt shrink as it goes in,
   * so the running row gets one token per (smaller) run, as many runs as {@link Engine#stepColumns}
   * plans, and the prompt's tokens are those of the same request alone.
   */
  @Test
  void prefillChunksShrinkAsTheirPastGrows() {
    assertPrefillChunksShrinkAsTheirPastGrows(EngineAdmissionTest::engine);
  }

  /**
   * {@link #prefillChunksShrinkAsTheirPastGrows} on the engines {@code engines} makes (one layout):
   * a 700-token prompt behind an adapter's prefix (which counts as past) joins a running row.
   */
  static void assertPrefillChunksShrinkAsTheirPastGrows(Function<EngineOptions, Engine> engines) {
    int step = 64;
    int pastTokens = 128;
    int promptLen = 700;
    GenerationRequest longReq =
        new GenerationRequest(
            "b",
            Fixtures.prefixOf(Fixtures.goldenCase(adapterCase())),
            Fixtures.longPrompt(promptLen),
            SamplingParams.greedy(4).withIgnoreEos(true));
    int prefix = longReq.prefixLength();
    assertTrue(prefix > 0, "the adapter case has a prefix");
    int runs = 0;
    for (int done = 0; done < promptLen; runs++) {
      done += Math.min(Engine.stepColumns(step, 1, prefix + done, pastTokens), promptLen - done);
    }
    int byTokens = (promptLen + step - 1) / step;
    assertTrue(runs > 2 * byTokens, runs + " runs by cost, " + byTokens + " by tokens");
    EngineOptions o =
        EngineOptions.defaults().withPrefillStepTokens(step).withPrefillStepPastTokens(pastTokens);
    try (Engine e = engines.apply(o)) {
      Collector alone = new Collector();
      e.submit(longReq, alone);
      alone.await();
      Gate running = new Gate(2);
      e.submit(
          new GenerationRequest(
              "a",
              null,
              Fixtures.longPrompt(10),
              SamplingParams.greedy(runs + 20).withIgnoreEos(true)),
          running);
      running.awaitHeld();
      int[] runningTokensAtFirstToken = {-1};
      Collector joined =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              if (count == 0) runningTokensAtFirstToken[0] = running.count; // engine thread
              super.onToken(tokenId, piece, logprob);
            }
          };
      e.submit(longReq, joined);
      running.open();
      assertEquals(FinishReason.LENGTH, joined.await().reason());
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertEquals(alone.ids, joined.ids);
      // One decode step after each run but the last (which joins, then decodes).
      assertEquals(
          2 + runs - 1,
          runningTokensAtFirstToken[0],
          "running row's tokens when the " + runs + "-run prefill ended");
    }
  }

  @Test
  void aStepColumnCostsOnePlusItsPastOverTheSetting() {
    assertEquals(64, Engine.stepColumns(64, 1, 0, 1280));
    assertEquals(32, Engine.stepColumns(64, 1, 1280, 1280));
    assertEquals(16, Engine.stepColumns(64, 2, 1280, 1280));
    assertEquals(21, Engine.stepColumns(64, 1, 2560, 1280));
    assertEquals(64, Engine.stepColumns(64, 1, 100_000, 0)); // 0: tokens only
    assertEquals(1, Engine.stepColumns(64, 16, Integer.MAX_VALUE, 1)); // always moves on
    assertEquals(1, Engine.stepColumns(1, Integer.MAX_VALUE, 0, 1));
    int last = Integer.MAX_VALUE;
    for (int past = 0; past < 5000; past += 7) {
      int c = Engine.stepColumns(64, 1, past, 1280);
      assertTrue(c <= last && c >= 1, "columns at past " + past + ": " + c);
      last = c;
    }
  }

  /** Prefill cut into 8-column runs, each extending the last one's KV, changes no golden. */
  @Test
  void prefillInSeveralRunsStaysExact() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    try (Engine e = engine(EngineOptions.defaults().withMaxPrefillTokens(8))) {
      List<Collector> outs = new ArrayList<>();
      for (String id : Fixtures.caseIds()) {
        Collector c = new Collector();
        e.submit(golden(id, n), c);
        outs.add(c);
      }
      for (int i = 0; i < outs.size(); i++) {
        String id = Fixtures.caseIds().get(i);
        outs.get(i).await();
        assertArrayEquals(goldenIds(id, n), outs.get(i).idArray(), id);
      }
    }
  }

  /**
   * A flood from one tenant fills its share of the queue and of the rows; another tenant's single
   * request is still queued (no 429) and gets the next free row.
   */
  @Test
  void aTenantFloodNeither429sNorStarvesASingleRequest() {
    EngineOptions o = EngineOptions.defaults().withMaxBatchRows(2).withMaxQueue(4);
    try (Engine e = engine(o)) {
      Gate blocker = new Gate(1);
      e.submit(
          new GenerationRequest(
              "busy", null, Fixtures.longPrompt(8), SamplingParams.greedy(3).withIgnoreEos(true)),
          blocker);
      blocker.awaitHeld();
      List<Collector> flood = new ArrayList<>();
      int rejected = 0;
      for (int i = 0; i < 10; i++) {
        Collector c = new Collector();
        try {
          e.submit(
              new GenerationRequest(
                  "busy",
                  null,
                  Fixtures.longPrompt(8),
                  SamplingParams.greedy(3).withIgnoreEos(true)),
              c);
          flood.add(c);
        } catch (QueueFullException full) {
          rejected++;
        }
      }
      assertEquals(4, flood.size());
      assertEquals(6, rejected);
      int[] floodStartedBeforeQuiet = {-1};
      Collector quiet =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              if (count == 0) {
                floodStartedBeforeQuiet[0] = (int) flood.stream().filter(f -> f.count > 0).count();
              }
              super.onToken(tokenId, piece, logprob);
            }
          };
      e.submit( // the queue is full, but quiet has nothing waiting: accepted
          new GenerationRequest(
              "quiet", null, Fixtures.longPrompt(8), SamplingParams.greedy(3).withIgnoreEos(true)),
          quiet);
      blocker.open();
      assertEquals(FinishReason.LENGTH, quiet.await().reason());
      // busy holds one of two rows (its fair share) while quiet waits: quiet takes the other.
      assertEquals(0, floodStartedBeforeQuiet[0]);
      flood.forEach(c -> assertEquals(FinishReason.LENGTH, c.await().reason()));
    }
  }
}
