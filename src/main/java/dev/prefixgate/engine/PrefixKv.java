package dev.prefixgate.engine;

import java.nio.FloatBuffer;

/**
 * One adapter's prefix as the engine consumes it: per layer, a key and a value block of shape
 * {@code (n_head, P, head_dim)} in direct, native-order buffers. Immutable after construction; the
 * engine only reads it, from its own thread, while a request that uses it is running.
 */
public final class PrefixKv {
  private final int length; // P, the number of virtual tokens
  private final FloatBuffer[] keys; // (n_layer) each (n_head, P, head_dim)
  private final FloatBuffer[] values; // (n_layer) each (n_head, P, head_dim)

  PrefixKv(int length, FloatBuffer[] keys, FloatBuffer[] values) {
    this.length = length;
    this.keys = keys;
    this.values = values;
  }

  public int length() {
    return length;
  }

  public int layers() {
    return keys.length;
  }

  /** Read-only view of layer {@code i}'s keys, {@code (n_head, P, head_dim)}. */
  public FloatBuffer key(int layer) {
    return keys[layer].asReadOnlyBuffer();
  }

  public FloatBuffer value(int layer) {
    return values[layer].asReadOnlyBuffer();
  }

  /** Bytes held in native memory (for the cache's byte budget). */
  public long bytes() {
    long n = 0;
    for (int i = 0; i < keys.length; i++) n += 4L * (keys[i].capacity() + values[i].capacity());
    return n;
  }
}
