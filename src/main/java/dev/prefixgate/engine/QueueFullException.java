package dev.prefixgate.engine;

/** The admission queue is full; the caller should retry later (HTTP 429). */
public final class QueueFullException extends RuntimeException {
  private final int queued;

  public QueueFullException(int queued) {
    this("server busy: " + queued + " requests already waiting", queued);
  }

  public QueueFullException(String message, int queued) {
    super(message);
    this.queued = queued;
  }

  public int queued() {
    return queued;
  }
}
