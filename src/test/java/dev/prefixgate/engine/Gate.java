package dev.prefixgate.engine;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A collector that holds the engine thread inside its token callback at each of the given token
 * counts until {@link #open} is called, so a test can set up the queue while the engine provably
 * stands still between two steps. No sleeps, no timing: the engine cannot take a step while the
 * callback blocks.
 */
class Gate extends Collector {
  private record Point(CountDownLatch reached, CountDownLatch released) {}

  private final Map<Integer, Point> points = new LinkedHashMap<>();
  private final int first;

  /**
   * Holds at each count in {@code at}, in order; {@link #awaitHeld()} and {@link #open()} use the
   * first.
   */
  Gate(int... at) {
    if (at.length == 0) throw new IllegalArgumentException("a gate needs at least one count");
    first = at[0];
    for (int n : at) points.put(n, new Point(new CountDownLatch(1), new CountDownLatch(1)));
  }

  @Override
  public void onToken(int tokenId, String piece, float logprob) {
    super.onToken(tokenId, piece, logprob);
    Point p = points.get(count);
    if (p != null) {
      p.reached.countDown();
      try {
        if (!p.released.await(120, TimeUnit.SECONDS)) {
          throw new AssertionError("gate at " + count + " never opened");
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Waits until the engine thread is held at the first count. */
  Gate awaitHeld() {
    return awaitHeld(first);
  }

  /** Waits until the engine thread is held at token count {@code at}. */
  Gate awaitHeld(int at) {
    try {
      if (!point(at).reached.await(120, TimeUnit.SECONDS)) {
        throw new AssertionError("gate at " + at + " never reached");
      }
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
    return this;
  }

  void open() {
    open(first);
  }

  void open(int at) {
    point(at).released.countDown();
  }

  private Point point(int at) {
    Point p = points.get(at);
    if (p == null) throw new IllegalArgumentException("no gate at " + at);
    return p;
  }
}
