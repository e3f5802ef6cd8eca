package dev.prefixgate.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** A listener that records everything and lets a test wait for the end. */
class Collector implements TokenListener {
  final List<Integer> ids = new ArrayList<>();
  final List<Float> logprobs = new ArrayList<>();
  final StringBuilder text = new StringBuilder();
  final List<String> pieces = new ArrayList<>();
  final CompletableFuture<Completion> done = new CompletableFuture<>();
  volatile int count;

  @Override
  public synchronized void onToken(int tokenId, String piece, float logprob) {
    ids.add(tokenId);
    logprobs.add(logprob);
    text.append(piece);
    pieces.add(piece);
    count++;
  }

  @Override
  public synchronized void onComplete(Completion c) {
    text.append(c.trailingText());
    done.complete(c);
  }

  Completion await() {
    try {
      return done.get(120, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError("generation did not complete", e);
    }
  }

  synchronized int[] idArray() {
    return ids.stream().mapToInt(Integer::intValue).toArray();
  }
}
