package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.FloatBuffer;
import java.util.Locale;
import org.junit.jupiter.api.Test;

class ReservedRegionTest {
  /** Where the engine's KV pool must get a reserved region (the platforms CI and images run). */
  static boolean expected() {
    String os = System.getProperty("os.name").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch");
    return os.contains("linux") && (arch.equals("amd64") || arch.equals("aarch64"));
  }

  @Test
  void isAvailableOn64BitLinux() {
    assertEquals(expected(), ReservedRegion.available());
  }

  /**
   * Written pages keep their values; a decommitted range's whole OS pages read as zeros afterwards
   * (their memory went back to the system) and the partial pages at its ends keep theirs.
   */
  @Test
  void decommittedPagesReadAsZerosAndTheRestKeepsItsValues() {
    assumeTrue(ReservedRegion.available());
    long page = ReservedRegion.OS_PAGE;
    try (ReservedRegion r = ReservedRegion.reserve(16 * page, "test")) {
      assertEquals(16 * page, r.bytes());
      FloatBuffer f = r.buffer(0, r.bytes()).asFloatBuffer();
      for (int i = 0; i < f.capacity(); i++) f.put(i, i + 1f);
      // from the middle of page 2 to the middle of page 6: pages 3, 4 and 5 are whole
      r.decommit(2 * page + page / 2, 4 * page);
      int perPage = (int) (page / Float.BYTES);
      for (int i = 0; i < f.capacity(); i++) {
        boolean gone = i >= 3 * perPage && i < 6 * perPage;
        assertEquals(gone ? 0f : i + 1f, f.get(i), "float " + i);
      }
      f.put(4 * perPage, 7f); // a decommitted page can be written again
      assertEquals(7f, f.get(4 * perPage));
    }
  }

  @Test
  void aRangeOutsideTheRegionIsRefused() {
    assumeTrue(ReservedRegion.available());
    try (ReservedRegion r = ReservedRegion.reserve(100, "test")) {
      assertEquals(ReservedRegion.OS_PAGE, r.bytes(), "rounded up to one page");
      assertThrows(IndexOutOfBoundsException.class, () -> r.buffer(0, r.bytes() + 1));
      assertThrows(IndexOutOfBoundsException.class, () -> r.decommit(-1, 10));
      assertThrows(IndexOutOfBoundsException.class, () -> r.decommit(10, Long.MAX_VALUE));
    }
  }

  /** Address space is reserved, not allocated: far more than this machine's memory is fine. */
  @Test
  void aReservationLargerThanMemoryCostsNothingUntilWritten() {
    assumeTrue(ReservedRegion.available());
    long huge = 1L << 40; // 1 TiB
    try (ReservedRegion r = ReservedRegion.reserve(huge, "test")) {
      FloatBuffer f = r.buffer(huge - (1 << 20), 1 << 20).asFloatBuffer();
      f.put(0, 3f);
      assertEquals(3f, f.get(0));
    }
  }
}
