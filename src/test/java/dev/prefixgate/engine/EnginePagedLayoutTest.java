package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link EngineSlotLayoutTest}'s tests on the committed paged graph ({@code
 * trainer/fixtures/tiny-bloom-paged}, {@code prefixgate_trainer.slot_graph --attention paged}): KV
 * lives in pages of one pool, read through a block table; newcomers are prefilled several at once
 * and rows join and leave without any KV moving.
 */
class EnginePagedLayoutTest extends EngineSlotLayoutTest {
  @Override
  Path graph() {
    return Path.of("trainer", "fixtures", "tiny-bloom-paged");
  }

  @Override
  GraphContract.KvLayout layout() {
    return GraphContract.KvLayout.PAGED;
  }

  private long perToken() {
    ModelConfig cfg = model.config();
    return 2L * cfg.nLayer() * cfg.nHead() * cfg.headDim() * Float.BYTES;
  }

  /**
   * A 700-token row next to five short ones: the pool holds their live tokens in pages (within a
   * sixteenth of headroom and each row's last, partly filled page), not rows x widest row as the
   * other layouts do; the short rows decode in a run of their own, not widened to the long row;
   * every row stays exact, and once they have left the pool is re-made small.
   */
  @Test
  void kvHeldFollowsTheLiveTokensNotTheWidestRow() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    List<String> ids = Fixtures.caseIds().subList(0, 5);
    try (Engine e = engine(EngineOptions.defaults())) {
      e.idleReleaseAfter(Duration.ofHours(1)); // only the shrink may hand memory back
      Collector wide = new Collector();
      e.submit(
          new GenerationRequest(
              "wide", null, Fixtures.longPrompt(700), SamplingParams.greedy(n).withIgnoreEos(true)),
          wide);
      List<Collector> outs = new ArrayList<>();
      for (int i = 0; i < ids.size(); i++) {
        Collector c = i == ids.size() - 1 ? new Gate(3) : new Collector();
        e.submit(golden(ids.get(i), n), c);
        outs.add(c);
      }
      Gate last = (Gate) outs.get(outs.size() - 1);
      last.awaitHeld();
      Engine.Stats held = e.stats();
      int rows = held.running();
      assertEquals(6, rows, "all six rows run together");
      assertTrue(e.splitDecodeSteps() > 0, "the short rows decode apart from the 700-token one");
      long live = held.kvLiveBytes();
      assertTrue(live >= 700 * perToken(), "live " + live);
      long rounding = (long) rows * Engine.PAGE_TOKENS * perToken();
      assertTrue(
          held.kvHeldBytes() <= live + live / 16 + rounding,
          "held " + held.kvHeldBytes() + " for live " + live);
      assertTrue(
          held.kvHeldBytes() < (long) rows * 700 * perToken() / 3,
          "far below rows x widest row: " + held.kvHeldBytes());
      long whileWide = held.memoryBytes();
      last.open();
      assertEquals(FinishReason.LENGTH, wide.await().reason());
      for (int i = 0; i < ids.size(); i++) {
        outs.get(i).await();
        assertArrayEquals(goldenIds(ids.get(i), n), outs.get(i).idArray(), ids.get(i));
      }
      Gate next = new Gate(1);
      e.submit(golden(ids.get(0), n), next);
      next.awaitHeld(); // past the step that dropped the finished rows
      long afterwards = e.stats().memoryBytes();
      next.open();
      next.await();
      assertArrayEquals(goldenIds(ids.get(0), n), next.idArray());
      assertTrue(
          whileWide - afterwards >= 600 * perToken(),
          "pool re-made smaller: " + whileWide + " -> " + afterwards + " bytes");
    }
  }

  private static GenerationRequest wide700(int n) {
    return new GenerationRequest(
        "wide", null, Fixtures.longPrompt(700), SamplingParams.greedy(n).withIgnoreEos(true));
  }

  /**
   * A long newcomer while a row runs, on a pool in a reserved region: its pages are counted, not
   * allocated, so the pool is never re-made (no KV moves, nothing is copied) while it grows and
   * shrinks; both rows stay exact, and the shrink hands the memory back to the budget.
   */
  @Test
  void aPoolInAReservedRegionGrowsAndShrinksWithoutBeingReMade() {
    assertEquals(
        ReservedRegionTest.expected(), ReservedRegion.available(), "reserved regions on this OS");
    org.junit.jupiter.api.Assumptions.assumeTrue(ReservedRegion.available());
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "globex/1";
    GenerationRequest wide = wide700(n);
    try (Engine e = engine(EngineOptions.defaults())) {
      e.idleReleaseAfter(Duration.ofHours(1)); // only the shrink may hand memory back
      Gate running = new Gate(2);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      assertTrue(e.poolReserved(), "the pool lies in a reserved region");
      long small = e.stats().kvHeldBytes();
      Gate beside = new Gate(1);
      e.submit(wide, beside);
      running.open(); // the next step admits the wide row beside the running one
      beside.awaitHeld(); // its prefill is done: the pool has grown by its 44 pages
      assertEquals(0, e.stats().kvRemakes(), "grown in place, nothing re-made or copied");
      beside.open();
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is exact");
      beside.await();
      Gate next = new Gate(2);
      e.submit(golden(id, n), next);
      next.awaitHeld(); // one step after its prefill: the finished rows have been dropped
      long after = e.stats().kvHeldBytes();
      next.open();
      next.await();
      assertArrayEquals(goldenIds(id, n), next.idArray(), "exact after the shrink");
      assertTrue(after <= small, "shrunk back: " + after + " > " + small);
      Collector alone = new Collector();
      e.submit(wide, alone);
      alone.await();
      assertEquals(alone.ids, beside.ids, "the wide row alone and beside another");
    }
  }

  /**
   * A 700-token newcomer prefilled in runs of 128 tokens beside a running row, on a pool in a
   * reserved region: halfway through its prefill the pool holds the tokens written so far (a
   * sixteenth of headroom and each row's last page), not the whole prompt's pages; both rows stay
   * exact.
   */
  @Test
  void aPrefillingRowHoldsThePagesOfTheTokensWrittenSoFar() {
    org.junit.jupiter.api.Assumptions.assumeTrue(ReservedRegion.available());
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "globex/1";
    GenerationRequest wide = wide700(n);
    try (Engine e = engine(EngineOptions.defaults().withPrefillStepTokens(128))) {
      e.idleReleaseAfter(Duration.ofHours(1));
      Gate running = new Gate(2, 4);
      e.submit(golden(id, n), running);
      running.awaitHeld(2);
      Collector beside = new Collector();
      e.submit(wide, beside);
      running.open(2); // the next steps admit the wide row and prefill it 128 tokens a step
      running.awaitHeld(4); // two decode steps later: two of its six prefill runs are done
      Engine.Stats mid = e.stats();
      running.open(4);
      long live = mid.kvLiveBytes();
      assertTrue(live > 256 * perToken(), "two prefill runs written: live " + live);
      assertTrue(live < 700 * perToken(), "the prefill is not done: live " + live);
      long pages = 4L * Engine.PAGE_TOKENS * perToken(); // two rows' last pages, two of headroom
      assertTrue(
          mid.kvHeldBytes() <= live + live / 16 + pages,
          "held " + mid.kvHeldBytes() + " for live " + live + " mid-prefill");
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is exact");
      beside.await();
      Collector alone = new Collector();
      e.submit(wide, alone);
      alone.await();
      assertEquals(alone.ids, beside.ids, "the wide row prefilled in runs and alone");
    }
  }

  /**
   * Two 700-token rows and a short one on a pool in a reserved region: once the first long row has
   * left, the pool shrinks to what the other two hold (within the headroom), though more than half
   * of it is still in use; the shrink moves the live pages above the new size, and the rows that
   * stay are exact.
   */
  @Test
  void aPoolInARegionShrinksWhenARowLeavesThoughMostOfItIsInUse() {
    org.junit.jupiter.api.Assumptions.assumeTrue(ReservedRegion.available());
    int n = 4;
    GenerationRequest leaving =
        new GenerationRequest(
            "a", null, Fixtures.longPrompt(700), SamplingParams.greedy(n).withIgnoreEos(true));
    GenerationRequest staying =
        new GenerationRequest(
            "b", null, Fixtures.longPrompt(700), SamplingParams.greedy(4 * n).withIgnoreEos(true));
    try (Engine e = engine(EngineOptions.defaults())) {
      e.idleReleaseAfter(Duration.ofHours(1)); // only the shrink may hand memory back
      Collector first = new Collector();
      Collector second = new Collector();
      Gate small = new Gate(n + 2); // the first long row's last token is at least two steps back
      e.submit(leaving, first);
      e.submit(staying, second);
      e.submit(golden("globex/1", 4 * n), small);
      small.awaitHeld();
      Engine.Stats after = e.stats();
      small.open();
      assertEquals(FinishReason.LENGTH, first.await().reason());
      assertEquals(2, after.running(), "the first long row has left");
      long live = after.kvLiveBytes();
      long pages = 4L * Engine.PAGE_TOKENS * perToken(); // two rows' last pages, two of headroom
      assertTrue(
          after.kvHeldBytes() <= live + live / 16 + pages,
          "held " + after.kvHeldBytes() + " for live " + live + " after a long row left");
      small.await();
      assertArrayEquals(goldenIds("globex/1", 4 * n), small.idArray(), "the short row is exact");
      second.await();
      Collector alone = new Collector();
      e.submit(staying, alone);
      alone.await();
      assertEquals(alone.ids, second.ids, "the long row that stayed, and alone");
    }
  }

  /**
   * A long newcomer while a row runs, on a pool of direct buffers: the larger pool its pages need
   * is allocated off the engine thread (the running row decodes meanwhile) and put in place before
   * its prefill; both rows stay exact.
   */
  @Test
  void aLongNewcomersPagesAreAllocatedInTheBackgroundWhileARowRuns() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    String id = "globex/1";
    GenerationRequest wide = wide700(n);
    try (Engine e = engine(EngineOptions.defaults())) {
      e.reservedRegions(false);
      e.backgroundGrowthAbove(0); // the tiny model's pool is a few MiB
      Collector alone = new Collector();
      e.submit(wide, alone);
      alone.await(); // once it has left, the pool is re-made small
      Gate running = new Gate(2);
      e.submit(golden(id, n), running);
      running.awaitHeld();
      long before = e.backgroundPages();
      Collector beside = new Collector();
      e.submit(wide, beside);
      running.open(); // the next step admits the wide row beside the running one
      assertEquals(FinishReason.LENGTH, running.await().reason());
      assertArrayEquals(goldenIds(id, n), running.idArray(), "the running row is exact");
      beside.await();
      assertEquals(alone.ids, beside.ids, "the wide row is exact");
      assertTrue(
          e.backgroundPages() - before >= 700 / Engine.PAGE_TOKENS,
          "its pages were allocated in the background: " + (e.backgroundPages() - before));
    }
  }

  /** The wide row alone gives the same tokens as next to the short rows (checked above). */
  @Test
  void aLongRowAloneAndBesideOthersGivesTheSameTokens() {
    int n = Fixtures.golden().get("max_new_tokens").asInt();
    GenerationRequest wide =
        new GenerationRequest(
            "wide",
            Fixtures.adapter("globex").kv(),
            Fixtures.longPrompt(700),
            SamplingParams.greedy(n).withIgnoreEos(true));
    try (Engine e = engine(EngineOptions.defaults().withMaxPrefillTokens(64))) {
      Collector alone = new Collector();
      e.submit(wide, alone);
      alone.await();
      List<Collector> outs = new ArrayList<>();
      Collector beside = new Collector();
      for (String id : Fixtures.caseIds().subList(0, 4)) {
        Collector c = new Collector();
        e.submit(golden(id, n), c);
        outs.add(c);
      }
      e.submit(wide, beside);
      beside.await();
      assertEquals(alone.ids, beside.ids);
      for (int i = 0; i < outs.size(); i++) {
        String id = Fixtures.caseIds().get(i);
        outs.get(i).await();
        assertArrayEquals(goldenIds(id, n), outs.get(i).idArray(), id);
      }
    }
  }
}
