package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Control flow of the step loop: sampling, stops, cancellation, admission, fairness. */
class EngineBehaviourTest {
  private static final int[] PROMPT =
      Fixtures.ints(Fixtures.goldenCase("base/1").get("prompt_ids"));

  private static Engine engine(EngineOptions o) {
    return new Engine(Fixtures.model(), o.withIntraOpThreads(1));
  }

  private static SamplingParams sampled(long seed, int n) {
    return new SamplingParams(n, 1.0, 50, 0.95, 1.1, seed, List.of(), true, false);
  }

  private static Collector run(Engine e, String tenant, PrefixKv prefix, SamplingParams p) {
    Collector c = new Collector();
    e.submit(new GenerationRequest(tenant, prefix, PROMPT, p), c);
    c.await();
    return c;
  }

  @Test
  void sameSeedSameTokensAloneOrInABatch() {
    try (Engine e = engine(EngineOptions.defaults())) {
      Collector a = run(e, "a", null, sampled(7, 24));
      Collector b = run(e, "a", null, sampled(7, 24));
      assertEquals(a.ids, b.ids);
      List<Collector> batch = new ArrayList<>();
      for (long seed : new long[] {7, 8, 9}) {
        Collector c = new Collector();
        e.submit(new GenerationRequest("t" + seed, null, PROMPT, sampled(seed, 24)), c);
        batch.add(c);
      }
      batch.forEach(Collector::await);
      assertEquals(a.ids, batch.get(0).ids);
      assertNotEquals(batch.get(1).ids, batch.get(2).ids);
    }
  }

  @Test
  void stopSequenceEndsWithStopAndIsNotReturned() {
    // A stop string from the middle of the base model's golden text for this prompt.
    String golden = Fixtures.goldenCase("base/1").get("text").asText().replace("</s>", "");
    String stop = golden.substring(golden.length() / 2, golden.length() / 2 + 3);
    String before = golden.substring(0, golden.indexOf(stop));
    try (Engine e = engine(EngineOptions.defaults())) {
      SamplingParams p = new SamplingParams(32, 0, 0, 1, 1, null, List.of(stop), true, false);
      Collector c = run(e, "a", null, p);
      assertEquals(FinishReason.STOP, c.done.join().reason());
      assertEquals(before, c.text.toString());
    }
  }

  @Test
  void maxNewTokensEndsWithLength() {
    try (Engine e = engine(EngineOptions.defaults())) {
      Collector c = run(e, "a", null, SamplingParams.greedy(3).withIgnoreEos(true));
      assertEquals(FinishReason.LENGTH, c.done.join().reason());
      assertEquals(3, c.ids.size());
      assertEquals(3, c.done.join().completionTokens());
      assertEquals(PROMPT.length, c.done.join().promptTokens());
    }
  }

  @Test
  void cancelFreesTheRowAtTheNextStep() throws Exception {
    try (Engine e = engine(EngineOptions.defaults().withMaxBatchRows(1))) {
      // Held at its 2nd token while the second request is queued, then at its 6th: four steps
      // later, with the engine standing still, the second request must still be waiting.
      Gate long1 = new Gate(2, 6);
      Engine.Handle h =
          e.submit(
              new GenerationRequest(
                  "a", null, PROMPT, SamplingParams.greedy(1000).withIgnoreEos(true)),
              long1);
      long1.awaitHeld(2);
      boolean[] firstDoneAtSecondsFirstToken = {false};
      Collector next =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              // Engine thread: the snapshot is exact.
              if (count == 0) firstDoneAtSecondsFirstToken[0] = long1.done.isDone();
              super.onToken(tokenId, piece, logprob);
            }
          };
      e.submit(
          new GenerationRequest("b", null, PROMPT, SamplingParams.greedy(4).withIgnoreEos(true)),
          next);
      long1.open(2);
      long1.awaitHeld(6);
      assertEquals(0, next.count, "only one row: the second request must wait");
      assertFalse(next.done.isDone());
      h.cancel();
      long1.open(6);
      assertEquals(FinishReason.CANCELLED, long1.await().reason());
      assertTrue(long1.count < 1000);
      assertEquals(FinishReason.LENGTH, next.await().reason());
      assertTrue(
          firstDoneAtSecondsFirstToken[0], "the second request started before the row was freed");
    }
  }

  @Test
  void fullQueueRejectsAndQueuedCancelCompletes() throws Exception {
    try (Engine e = engine(EngineOptions.defaults().withMaxBatchRows(1).withMaxQueue(2))) {
      Collector running = new Collector();
      Engine.Handle first =
          e.submit(
              new GenerationRequest(
                  "a", null, PROMPT, SamplingParams.greedy(1000).withIgnoreEos(true)),
              running);
      running.awaitTokens(1);
      Collector q1 = new Collector();
      Engine.Handle queued =
          e.submit(new GenerationRequest("a", null, PROMPT, SamplingParams.greedy(2)), q1);
      e.submit(new GenerationRequest("b", null, PROMPT, SamplingParams.greedy(2)), new Collector());
      // A tenant that already waits is refused; one with nothing waiting would still get in.
      QueueFullException full =
          assertThrows(
              QueueFullException.class,
              () ->
                  e.submit(
                      new GenerationRequest("b", null, PROMPT, SamplingParams.greedy(2)),
                      new Collector()));
      assertEquals(2, full.queued());
      queued.cancel();
      assertEquals(FinishReason.CANCELLED, q1.await().reason());
      assertEquals(0, q1.count);
      first.cancel();
    }
  }

  @Test
  void oneTenantsBurstDoesNotStarveAnother() throws Exception {
    try (Engine e = engine(EngineOptions.defaults().withMaxBatchRows(1))) {
      List<Collector> burst = new ArrayList<>();
      // Held at its first token until the burst and the quiet request are all queued.
      Gate blocker = new Gate(1);
      e.submit(
          new GenerationRequest(
              "busy", null, PROMPT, SamplingParams.greedy(20).withIgnoreEos(true)),
          blocker);
      blocker.awaitHeld();
      for (int i = 0; i < 6; i++) {
        Collector c = new Collector();
        e.submit(
            new GenerationRequest(
                "busy", null, PROMPT, SamplingParams.greedy(4).withIgnoreEos(true)),
            c);
        burst.add(c);
      }
      int[] burstDoneWhenQuietFinished = {-1};
      Collector other =
          new Collector() {
            @Override
            public synchronized void onComplete(Completion c) {
              // Runs on the engine thread, so this snapshot is exact.
              burstDoneWhenQuietFinished[0] =
                  (int) burst.stream().filter(b -> b.done.isDone()).count();
              super.onComplete(c);
            }
          };
      e.submit(
          new GenerationRequest(
              "quiet", null, PROMPT, SamplingParams.greedy(4).withIgnoreEos(true)),
          other);
      blocker.open();
      other.await();
      assertTrue(
          burstDoneWhenQuietFinished[0] <= 1,
          "quiet tenant waited for " + burstDoneWhenQuietFinished[0] + " of the burst");
      burst.forEach(Collector::await);
    }
  }

  @Test
  void requestsOverTheContextLimitAreRefusedUpFront() {
    EngineOptions small = new EngineOptions(1, false, false, 4, 4096, 1024, 8, 64);
    try (Engine e = engine(small)) {
      IllegalArgumentException ex =
          assertThrows(
              IllegalArgumentException.class,
              () ->
                  e.submit(
                      new GenerationRequest(
                          "a", Fixtures.adapter("globex").kv(), PROMPT, SamplingParams.greedy(60)),
                      new Collector()));
      assertTrue(ex.getMessage().contains("maximum context length is 64 tokens"), ex.getMessage());
      assertThrows(
          IllegalArgumentException.class,
          () ->
              e.submit(
                  new GenerationRequest("a", null, new int[] {999_999}, SamplingParams.greedy(1)),
                  new Collector()));
    }
  }

  @Test
  void aFailingListenerCancelsOnlyItsOwnSequence() {
    try (Engine e = engine(EngineOptions.defaults())) {
      Collector bad =
          new Collector() {
            @Override
            public synchronized void onToken(int tokenId, String piece, float logprob) {
              super.onToken(tokenId, piece, logprob);
              if (count == 2) throw new IllegalStateException("client went away");
            }
          };
      Collector good = new Collector();
      e.submit(
          new GenerationRequest("a", null, PROMPT, SamplingParams.greedy(16).withIgnoreEos(true)),
          bad);
      e.submit(
          new GenerationRequest("b", null, PROMPT, SamplingParams.greedy(16).withIgnoreEos(true)),
          good);
      assertEquals(FinishReason.CANCELLED, bad.await().reason());
      assertEquals(FinishReason.LENGTH, good.await().reason());
      assertEquals(16, good.ids.size());
    }
  }
}
