package dev.prefixgate.adapter;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.prefixgate.engine.AdapterFormatException;
import org.junit.jupiter.api.Test;

/**
 * Adapter uploads as .zip or .tar.gz: the two PEFT files, or {@link AdapterFormatException} (400
 * invalid_adapter). Hostile archives (bombs, links, traversal, truncation) must end in the latter.
 */
class AdapterArchiveFuzzTest {
  /**
   * Small, so that a bomb in the corpus is cut off quickly: every mutation of a bomb inflates up to
   * this many bytes through the (instrumented) tar and zip readers, and at 1 MiB that held the
   * target to ~700 execs/s. The caps are checked the same way at any size.
   */
  static final long MAX = 64 * 1024;

  /** The room for tar headers, cut down the same way. */
  static final long TAR_OVERHEAD = 64 * 1024;

  @FuzzTest(maxDuration = "10s")
  void read(byte[] archive) {
    AdapterArchive.Files files;
    try {
      files = AdapterArchive.read(archive, MAX, TAR_OVERHEAD);
    } catch (AdapterFormatException e) {
      return;
    }
    assertTrue(files.adapterConfig().length + (long) files.safetensors().length <= MAX);
  }

  /**
   * A 4 MiB GNU long name, which the tar reader buffers before any entry is handed out: the cap on
   * the decompressed stream must stop it, not the missing-files check after it was all read.
   */
  @Test
  void longNamesCountTowardsTheLimit() throws Exception {
    byte[] archive;
    try (var in =
        getClass().getResourceAsStream("AdapterArchiveFuzzTestInputs/read/long_name.tar.gz")) {
      archive = in.readAllBytes();
    }
    AdapterFormatException e =
        assertThrows(
            AdapterFormatException.class, () -> AdapterArchive.read(archive, MAX, TAR_OVERHEAD));
    assertTrue(e.getMessage().contains("exceeds the limit"), e.getMessage());
  }
}
