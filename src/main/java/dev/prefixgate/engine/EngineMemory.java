package dev.prefixgate.engine;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;

/**
 * Every direct buffer the engine holds, counted against one budget. Sizes are {@code long} and
 * checked ({@link Math#multiplyExact}); a buffer never exceeds what one Java buffer can address (2
 * GiB). A buffer that does not fit fails with an {@link EngineMemoryException} naming what it was
 * for, before anything is written, so the caller can fail only the requests that asked for it.
 * Engine thread only, except {@link #used()} and {@link #budget()}.
 */
final class EngineMemory {
  /** Largest direct buffer: {@link ByteBuffer#allocateDirect} takes an int byte count. */
  static final long MAX_BUFFER_BYTES = Integer.MAX_VALUE - 8;

  private final long budget;
  private volatile long used;
  private volatile long injectFailureAbove = Long.MAX_VALUE;

  EngineMemory(long budget) {
    if (budget <= 0) throw new IllegalArgumentException("memory budget " + budget + " <= 0");
    this.budget = budget;
  }

  /**
   * 80% of the JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}, which defaults to the
   * maximum heap); the rest is left to the prefix cache and ONNX Runtime's Java-side buffers.
   */
  static long derivedBudget() {
    return directMemoryLimit() / 5 * 4;
  }

  static long directMemoryLimit() {
    try {
      HotSpotDiagnosticMXBean bean =
          ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
      long configured = Long.parseLong(bean.getVMOption("MaxDirectMemorySize").getValue());
      if (configured > 0) return configured;
    } catch (RuntimeException | LinkageError e) {
      // Not a HotSpot JVM: the default below is what HotSpot would use.
    }
    return Runtime.getRuntime().maxMemory();
  }

  long budget() {
    return budget;
  }

  long used() {
    return used;
  }

  long free() {
    return budget - used;
  }

  /**
   * Test hook: allocations larger than {@code bytes} fail as the JVM fails them when direct memory
   * runs out ({@link OutOfMemoryError}), so the real recovery path runs deterministically.
   */
  void injectFailureAbove(long bytes) {
    injectFailureAbove = bytes;
  }

  /** {@code buf} if it holds {@code need} floats, else a new buffer (growth 1.5× when it fits). */
  FloatBuffer ensure(FloatBuffer buf, long need, String what) {
    long have = buf == null ? 0 : buf.capacity();
    if (buf != null && have >= need) return buf;
    long n = capacity(have, need, Float.BYTES, what);
    return allocate(n * Float.BYTES, have * Float.BYTES, what).asFloatBuffer();
  }

  LongBuffer ensure(LongBuffer buf, long need, String what) {
    long have = buf == null ? 0 : buf.capacity();
    if (buf != null && have >= need) return buf;
    long n = capacity(have, need, Long.BYTES, what);
    return allocate(n * Long.BYTES, have * Long.BYTES, what).asLongBuffer();
  }

  /** Forgets a buffer the caller drops (its memory returns at the next GC). */
  void release(java.nio.Buffer buf) {
    if (buf == null) return;
    long bytes = (long) buf.capacity() * (buf instanceof LongBuffer ? Long.BYTES : Float.BYTES);
    used -= bytes;
  }

  private long capacity(long have, long need, int elem, String what) {
    long needBytes = bytes(need, elem);
    if (needBytes > MAX_BUFFER_BYTES) {
      throw new EngineMemoryException(
          what + " needs one buffer of " + mib(needBytes) + " MiB; at most 2048 MiB per buffer");
    }
    long grown = Math.min(MAX_BUFFER_BYTES / elem, Math.max(need, have + have / 2));
    long extra = bytes(grown, elem) - bytes(have, elem);
    if (used + extra > budget) grown = need;
    return Math.max(grown, 1);
  }

  private ByteBuffer allocate(long bytes, long oldBytes, String what) {
    if (used - oldBytes + bytes > budget) {
      throw new EngineMemoryException(
          what
              + " needs "
              + mib(bytes)
              + " MiB but only "
              + mib(budget - used + oldBytes)
              + " MiB of the engine's "
              + mib(budget)
              + " MiB memory budget are free");
    }
    ByteBuffer b;
    try {
      if (bytes > injectFailureAbove) {
        throw new OutOfMemoryError("Cannot reserve " + bytes + " bytes of direct buffer memory");
      }
      b = ByteBuffer.allocateDirect(Math.toIntExact(bytes));
    } catch (OutOfMemoryError e) {
      throw new EngineMemoryException(
          what + " needs " + mib(bytes) + " MiB that the JVM cannot allocate: " + e.getMessage(),
          e);
    }
    used += bytes - oldBytes;
    return b.order(ByteOrder.nativeOrder());
  }

  static long bytes(long elements, int elem) {
    return Math.multiplyExact(elements, (long) elem);
  }

  static long mib(long bytes) {
    return (bytes + (1 << 20) - 1) >> 20;
  }
}
