package dev.prefixgate.engine;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A collector that holds the engine thread inside its {@code at}-th token callback until {@link
 * #open} is called, so a test can set up the queue while the engine provably stands still between
 * two steps. No sleeps, no timing: the engine cannot take a step while the callback blocks.
 */
class Gate extends Collector {
  private final int at;
  private final CountDownLatch reached = new CountDownLatch(1);
  private final CountDownLatch released = new CountDownLatch(1);

  Gate(int at) {
    this.at = at;
  }

  @Override
  public void onToken(int tokenId, String piece, float logprob) {
    super.onToken(tokenId, piece, logprob);
    if (count == at) {
      reached.countDown();
      try {
        if (!released.await(120, TimeUnit.SECONDS)) throw new AssertionError("gate never opened");
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  /** Waits until the engine thread is held in the callback. */
  Gate awaitHeld() {
    try {
      if (!reached.await(120, TimeUnit.SECONDS)) throw new AssertionError("gate never reached");
    } catch (InterruptedException e) {
      throw new AssertionError(e);
    }
    return this;
  }

  void open() {
    released.countDown();
  }
}
