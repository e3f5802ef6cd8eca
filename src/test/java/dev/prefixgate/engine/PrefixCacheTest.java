package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Byte budget, LRU order, reference counting and pinning, on real demo adapter KV. */
class PrefixCacheTest {
  private static final ModelConfig MODEL = new ModelConfig(3, 4, 128, 4096, 2, 3);

  static PrefixKv kv(String adapter) throws Exception {
    Path dir = Path.of("trainer/fixtures/adapters", adapter);
    return PrefixAdapter.read(
            Files.readAllBytes(dir.resolve("adapter_config.json")),
            Files.readAllBytes(dir.resolve("adapter_model.safetensors")),
            MODEL)
        .kv();
  }

  private final AtomicInteger loads = new AtomicInteger();

  private PrefixCache.Loader loader(String adapter) {
    return d -> {
      loads.incrementAndGet();
      return kv(adapter);
    };
  }

  @Test
  void hitsReuseTheSameKvAndMissesLoadOnce() throws Exception {
    PrefixCache cache = new PrefixCache(1 << 20);
    try (PrefixCache.Lease a = cache.acquire("a", false, loader("acme"));
        PrefixCache.Lease b = cache.acquire("a", false, loader("acme"))) {
      assertSame(a.kv(), b.kv());
    }
    assertEquals(1, loads.get());
    assertEquals(1, cache.hits());
    assertEquals(1, cache.misses());
  }

  @Test
  void leastRecentlyUsedUnreferencedEntriesLeaveFirst() throws Exception {
    long acme = kv("acme").bytes(); // 8 tokens
    long initech = kv("initech").bytes(); // 4 tokens
    PrefixCache cache = new PrefixCache(acme + 2 * initech);
    cache.acquire("acme", false, loader("acme")).close();
    cache.acquire("i1", false, loader("initech")).close();
    cache.acquire("i2", false, loader("initech")).close();
    assertEquals(3, cache.size());
    cache.acquire("i1", false, loader("initech")).close(); // i1 is now more recent than acme
    cache.acquire("i3", false, loader("initech")).close();
    assertFalse(cache.contains("acme"), "the least recently used entry is evicted");
    assertTrue(cache.contains("i1") && cache.contains("i2") && cache.contains("i3"));
    assertTrue(cache.bytes() <= acme + 2 * initech);
  }

  @Test
  void entriesInUseAndPinnedEntriesAreNeverEvicted() throws Exception {
    PrefixCache cache = new PrefixCache(0);
    PrefixCache.Lease held = cache.acquire("held", false, loader("acme"));
    cache.acquire("pinned", true, loader("initech")).close();
    cache.acquire("other", false, loader("initech")).close();
    assertTrue(cache.contains("held"));
    assertTrue(cache.contains("pinned"));
    assertFalse(cache.contains("other"));
    held.close();
    held.close(); // idempotent
    cache.acquire("x", false, loader("initech")).close();
    assertFalse(cache.contains("held"));
    assertTrue(cache.contains("pinned"));
  }

  @Test
  void aFailedLoadCachesNothing() {
    PrefixCache cache = new PrefixCache(1 << 20);
    assertThrows(
        AdapterFormatException.class,
        () ->
            cache.acquire(
                "bad",
                false,
                d -> {
                  throw new AdapterFormatException("adapter_model.safetensors", "broken");
                }));
    assertEquals(0, cache.size());
  }
}
