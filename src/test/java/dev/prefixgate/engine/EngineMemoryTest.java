package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import org.junit.jupiter.api.Test;

class EngineMemoryTest {
  private static final long MIB = 1 << 20;

  /** Bytes of direct memory the JVM counts as reserved now (freed buffers leave this count). */
  private static long directBytes() {
    for (BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
      if (pool.getName().equals("direct")) return pool.getMemoryUsed();
    }
    throw new AssertionError("no direct buffer pool bean");
  }

  @Test
  void aReleasedBufferLeavesTheJvmsDirectMemoryAtOnce() {
    EngineMemory memory = new EngineMemory(1 << 30);
    FloatBuffer big = memory.ensure((FloatBuffer) null, 16 * MIB, "test"); // 64 MiB
    long held = directBytes();
    memory.release(big);
    // `big` is still referenced here, so no garbage collection can have freed it: only release did
    long freed = held - directBytes();
    assertTrue(freed >= 63 * MIB, "direct memory freed by release: " + freed);
    assertEquals(0, memory.used());
    assertEquals(0, memory.liveBuffers());
  }

  @Test
  void growingFreesTheBufferItReplaces() {
    EngineMemory memory = new EngineMemory(1 << 30);
    LongBuffer small = memory.ensure((LongBuffer) null, 4 * MIB, "test"); // 32 MiB
    long before = directBytes();
    LongBuffer grown = memory.ensure(small, 8 * MIB, "test"); // 64 MiB, the 32 freed
    long added = directBytes() - before;
    assertEquals(1, memory.liveBuffers());
    assertEquals(grown.capacity() * 8L, memory.used());
    assertTrue(added < 33 * MIB, "direct memory added by growing 32 to 64 MiB: " + added);
    assertSame(grown, memory.ensure(grown, 8 * MIB, "test"));
    memory.release(grown);
    assertEquals(0, memory.liveBuffers());
  }

  @Test
  void aFailedGrowthKeepsTheOldBufferUsable() {
    EngineMemory memory = new EngineMemory(1 << 30);
    FloatBuffer small = memory.ensure((FloatBuffer) null, 1024, "test");
    small.put(1023, 42f);
    memory.injectFailureAbove(64 * 1024);
    assertThrows(EngineMemoryException.class, () -> memory.ensure(small, 1 << 20, "test"));
    assertEquals(42f, small.get(1023)); // not freed: reading it would crash the JVM otherwise
    assertEquals(1, memory.liveBuffers());
    assertEquals(small.capacity() * 4L, memory.used());
    memory.release(small);
  }
}
