package dev.prefixgate.engine;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Every direct buffer the engine holds, counted against one budget. Sizes are {@code long} and
 * checked ({@link Math#multiplyExact}); a buffer never exceeds what one Java buffer can address (2
 * GiB). A buffer that does not fit fails with an {@link EngineMemoryException} naming what it was
 * for, before anything is written, so the caller can fail only the requests that asked for it.
 * Engine thread only, except {@link #used()} and {@link #budget()}.
 *
 * <p>A buffer the engine drops (replaced by a larger one, or released) is freed at once, not at the
 * next garbage collection: the engine allocates gigabytes of direct memory and almost no heap, so a
 * dropped buffer would otherwise stay resident for minutes, and once the dropped ones reach the
 * JVM's direct-memory limit every allocation stalls in {@code System.gc()} and its retry sleeps
 * (seconds with a KV pool of a few GB). The caller must hold no other reference to a buffer it
 * drops, and every ONNX tensor over it must be closed.
 */
final class EngineMemory {
  /** Largest direct buffer: {@link ByteBuffer#allocateDirect} takes an int byte count. */
  static final long MAX_BUFFER_BYTES = Integer.MAX_VALUE - 8;

  private static final Logger LOG = Logger.getLogger(EngineMemory.class.getName());
  private static final Freer FREER = Freer.find();

  private final long budget;
  private volatile long used;
  // the typed view handed out -> the direct buffer it was made from (the one that can be freed)
  private final Map<Buffer, ByteBuffer> bases = new IdentityHashMap<>();
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
    ByteBuffer base = allocate(n * Float.BYTES, have * Float.BYTES, what);
    return track(base.asFloatBuffer(), base, buf);
  }

  LongBuffer ensure(LongBuffer buf, long need, String what) {
    long have = buf == null ? 0 : buf.capacity();
    if (buf != null && have >= need) return buf;
    long n = capacity(have, need, Long.BYTES, what);
    ByteBuffer base = allocate(n * Long.BYTES, have * Long.BYTES, what);
    return track(base.asLongBuffer(), base, buf);
  }

  /**
   * Counts {@code bytes} against the budget now, for buffers that {@link #allocateCounted} makes
   * later, on another thread, and {@link #adopt} takes in; {@link #unreserve} when they never come.
   */
  void reserve(long bytes, String what) {
    if (used + bytes > budget) {
      throw new EngineMemoryException(
          what + " needs " + mib(bytes) + " MiB but only " + mib(budget - used) + " MiB are free");
    }
    used += bytes;
  }

  void unreserve(long bytes) {
    used -= bytes;
  }

  /**
   * Any thread: a direct buffer of {@code bytes}, not counted here (the caller counts it, or {@link
   * #reserve} did). Fails with an {@link EngineMemoryException} when the JVM cannot allocate it.
   */
  ByteBuffer allocateCounted(long bytes, String what) {
    try {
      if (bytes > injectFailureAbove) {
        throw new OutOfMemoryError("Cannot reserve " + bytes + " bytes of direct buffer memory");
      }
      return ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.nativeOrder());
    } catch (OutOfMemoryError e) {
      throw new EngineMemoryException(
          what + " needs " + mib(bytes) + " MiB that the JVM cannot allocate: " + e.getMessage(),
          e);
    }
  }

  /** Takes in a buffer from {@link #allocateCounted}: released (and freed) like any other. */
  FloatBuffer adopt(ByteBuffer base) {
    return track(base.asFloatBuffer(), base, null);
  }

  /** Frees a buffer from {@link #allocateCounted} that is not wanted after all (not counted). */
  static void discard(ByteBuffer base) {
    FREER.free(base);
  }

  /** Frees {@code old} (already uncounted) and remembers that {@code view} is over {@code base}. */
  private <B extends Buffer> B track(B view, ByteBuffer base, Buffer old) {
    free(old);
    bases.put(view, base);
    return view;
  }

  private void free(Buffer view) {
    if (view == null) return;
    ByteBuffer base = bases.remove(view);
    if (base != null) FREER.free(base);
  }

  /** Frees a buffer the caller drops; it must not be used again. */
  void release(Buffer buf) {
    if (buf == null) return;
    long bytes = (long) buf.capacity() * (buf instanceof LongBuffer ? Long.BYTES : Float.BYTES);
    used -= bytes;
    free(buf);
  }

  /** Direct buffers this instance has allocated and not yet freed. */
  int liveBuffers() {
    return bases.size();
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
    ByteBuffer b = allocateCounted(bytes, what);
    used += bytes - oldBytes;
    return b;
  }

  static long bytes(long elements, int elem) {
    return Math.multiplyExact(elements, (long) elem);
  }

  static long mib(long bytes) {
    return (bytes + (1 << 20) - 1) >> 20;
  }

  /**
   * Frees a direct buffer's memory now through {@code sun.misc.Unsafe#invokeCleaner} (module
   * jdk.unsupported, present on every JDK 9+). Where that cannot be had, frees nothing and the
   * buffer's memory returns at a garbage collection, as before.
   */
  private record Freer(Object unsafe, Method invokeCleaner) {
    static Freer find() {
      try {
        Class<?> type = Class.forName("sun.misc.Unsafe");
        Field f = type.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        return new Freer(f.get(null), type.getMethod("invokeCleaner", ByteBuffer.class));
      } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
        LOG.log(Level.INFO, "direct buffers are freed by the garbage collector only", e);
        return new Freer(null, null);
      }
    }

    void free(ByteBuffer b) {
      if (invokeCleaner == null) return;
      try {
        invokeCleaner.invoke(unsafe, b);
      } catch (ReflectiveOperationException | RuntimeException e) {
        LOG.log(Level.FINE, "could not free a direct buffer; the GC will", e);
      }
    }
  }
}
