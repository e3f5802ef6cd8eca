package dev.prefixgate.adapter;

import dev.prefixgate.engine.AdapterFormatException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;

/**
 * The two PEFT files out of a {@code .zip} or {@code .tar.gz} of a {@code save_pretrained} folder.
 * Defends against hostile archives: entry names with {@code ..} or absolute paths, links, too many
 * entries, and more uncompressed bytes than allowed (zip bombs are cut off while inflating).
 */
public final class AdapterArchive {
  public static final String CONFIG = "adapter_config.json";
  public static final String WEIGHTS = "adapter_model.safetensors";
  private static final int MAX_ENTRIES = 64;

  /** The extracted files. */
  public record Files(byte[] adapterConfig, byte[] safetensors) {}

  private AdapterArchive() {}

  public static Files read(byte[] archive, long maxUncompressed) throws AdapterFormatException {
    return read(archive, maxUncompressed, TAR_OVERHEAD);
  }

  /**
   * As {@link #read(byte[], long)}, with the room for tar headers given: the fuzz target shrinks it
   * with the content limit, so that a mutated bomb is cut off after kilobytes, not a megabyte.
   */
  static Files read(byte[] archive, long maxUncompressed, long tarOverhead)
      throws AdapterFormatException {
    try {
      if (archive.length >= 4 && archive[0] == 'P' && archive[1] == 'K')
        return zip(archive, maxUncompressed);
      if (archive.length >= 2 && (archive[0] & 0xff) == 0x1f && (archive[1] & 0xff) == 0x8b) {
        return tar(archive, maxUncompressed, tarOverhead);
      }
    } catch (IOException e) {
      throw new AdapterFormatException("archive", "unreadable archive: " + e.getMessage());
    } catch (IllegalArgumentException e) {
      // ZipInputStream refuses an entry name that is not UTF-8 with IllegalArgumentException.
      throw new AdapterFormatException("archive", "unreadable archive: " + e.getMessage());
    }
    throw new AdapterFormatException("archive", "not a .zip or .tar.gz file");
  }

  private static Files zip(byte[] archive, long max) throws IOException, AdapterFormatException {
    Collector c = new Collector(max);
    try (ZipInputStream in = new ZipInputStream(new ByteArrayInputStream(archive))) {
      for (ZipEntry e; (e = in.getNextEntry()) != null; ) {
        c.entry(e.getName(), e.isDirectory(), false, in);
      }
    }
    return c.files();
  }

  private static Files tar(byte[] archive, long max, long overhead)
      throws IOException, AdapterFormatException {
    Collector c = new Collector(max);
    // The tar reader itself buffers GNU long names and PAX headers, which the per-entry limit
    // never sees: the decompressed stream as a whole is capped too (headers and padding allowed).
    InputStream gunzipped =
        new Capped(new GZIPInputStream(new ByteArrayInputStream(archive)), max + overhead);
    try (TarArchiveInputStream in = new TarArchiveInputStream(gunzipped)) {
      for (TarArchiveEntry e; (e = in.getNextEntry()) != null; ) {
        c.entry(e.getName(), e.isDirectory(), e.isSymbolicLink() || e.isLink(), in);
      }
    }
    return c.files();
  }

  /** Room for tar headers, padding and the end-of-archive blocks of {@link #MAX_ENTRIES}. */
  private static final long TAR_OVERHEAD = 1024 * 1024;

  /** Fails once more than {@code limit} bytes have been read. */
  private static final class Capped extends java.io.FilterInputStream {
    private final long limit;
    private long read;

    Capped(InputStream in, long limit) {
      super(in);
      this.limit = limit;
    }

    @Override
    public int read() throws IOException {
      int b = super.read();
      if (b >= 0) count(1);
      return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      int r = super.read(b, off, len);
      if (r > 0) count(r);
      return r;
    }

    @Override
    public long skip(long n) throws IOException {
      long r = super.skip(n);
      if (r > 0) count(r);
      return r;
    }

    private void count(long n) throws IOException {
      read += n;
      if (read > limit) {
        throw new IOException("uncompressed content exceeds the limit of " + limit + " bytes");
      }
    }
  }

  private static final class Collector {
    private final long max;
    private long total;
    private int entries;
    private byte[] config;
    private byte[] weights;

    Collector(long max) {
      this.max = max;
    }

    void entry(String name, boolean dir, boolean link, InputStream in)
        throws IOException, AdapterFormatException {
      if (++entries > MAX_ENTRIES) {
        throw new AdapterFormatException("archive", "more than " + MAX_ENTRIES + " entries");
      }
      String n = name.replace('\\', '/');
      if (n.startsWith("/") || n.matches("^[A-Za-z]:.*") || ("/" + n + "/").contains("/../")) {
        throw new AdapterFormatException(
            "archive", "entry '" + name + "' escapes the archive folder");
      }
      if (link) throw new AdapterFormatException("archive", "entry '" + name + "' is a link");
      if (dir) return;
      String base = n.substring(n.lastIndexOf('/') + 1);
      byte[] data = readLimited(in);
      if (base.equals(CONFIG)) config = unique(config, data, name);
      if (base.equals(WEIGHTS)) weights = unique(weights, data, name);
    }

    private byte[] unique(byte[] previous, byte[] data, String name) throws AdapterFormatException {
      if (previous != null)
        throw new AdapterFormatException("archive", "more than one '" + name + "'");
      return data;
    }

    private byte[] readLimited(InputStream in) throws IOException, AdapterFormatException {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buf = new byte[64 * 1024];
      for (int r; (r = in.read(buf)) > 0; ) {
        total += r;
        if (total > max) {
          throw new AdapterFormatException(
              "archive", "uncompressed content exceeds the limit of " + max + " bytes");
        }
        out.write(buf, 0, r);
      }
      return out.toByteArray();
    }

    Files files() throws AdapterFormatException {
      if (config == null || weights == null) {
        throw new AdapterFormatException(
            "archive",
            "must contain " + CONFIG + " and " + WEIGHTS + " (a PEFT save_pretrained folder)");
      }
      return new Files(config, weights);
    }
  }
}
