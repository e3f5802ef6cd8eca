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
    notifyAll();
  }

  @Override
  public synchronized void onComplete(Completion c) {
    text.append(c.trailingText());
    done.complete(c);
    notifyAll();
  }

  /**
   * Waits (on this collector's monitor, woken by each token) until at least {@code n} tokens
   * arrived or the sequence ended; returns the count then.
   */
  synchronized int awaitTokens(int n) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
    try {
      while (count < n && !done.isDone()) {
        long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        if (left <= 0) throw new AssertionError("fewer than " + n + " tokens in 120 s");
        wait(left);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
    return count;
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
