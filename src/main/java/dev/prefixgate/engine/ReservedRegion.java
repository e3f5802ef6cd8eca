package dev.prefixgate.engine;

import com.sun.jna.Function;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Address space reserved once ({@code mmap} of anonymous memory with {@code MAP_NORESERVE}) and
 * filled by the kernel a page at a time as it is first written: a buffer sized for the most the
 * engine's budget allows costs memory only where it is used, so it never has to be re-allocated
 * (and copied and faulted in) to grow. {@link #decommit} hands a range's memory back to the system
 * ({@code madvise(MADV_DONTNEED)}; it reads as zeros afterwards) and {@link #close} the whole
 * region. Linux on 64 bits only, through JNA; {@link #available} says whether it can be had here.
 *
 * <p>Nothing counts this memory for the JVM ({@code -XX:MaxDirectMemorySize} does not see it): the
 * caller counts what it uses against the engine's budget. The caller must not touch a buffer of a
 * closed region, and every ONNX tensor over it must be closed first.
 */
final class ReservedRegion implements AutoCloseable {
  private static final Logger LOG = Logger.getLogger(ReservedRegion.class.getName());
  private static final int PROT_READ_WRITE = 0x1 | 0x2;
  private static final int MAP_PRIVATE = 0x02;
  private static final int MAP_ANONYMOUS = 0x20;
  private static final int MAP_NORESERVE = 0x4000;
  private static final int MADV_DONTNEED = 4;
  private static final int SC_PAGESIZE = 30;
  private static final Libc LIBC = Libc.find();

  /** The kernel's page size (4 KiB on x86-64, 4 to 64 KiB on aarch64). */
  static final long OS_PAGE = LIBC == null ? 4096 : LIBC.pageSize;

  private final long address;
  private final long bytes;
  private boolean closed;

  private ReservedRegion(long address, long bytes) {
    this.address = address;
    this.bytes = bytes;
  }

  /** Whether regions can be reserved on this platform (and why not, logged once at start). */
  static boolean available() {
    return LIBC != null;
  }

  /**
   * Reserves {@code bytes} of address space (rounded up to whole OS pages).
   *
   * @throws EngineMemoryException when the system refuses the reservation
   */
  static ReservedRegion reserve(long bytes, String what) {
    if (LIBC == null) throw new IllegalStateException("reserved regions are not available here");
    long size = Math.addExact(bytes, OS_PAGE - 1) & -OS_PAGE;
    Pointer p =
        LIBC.mmap.invokePointer(
            new Object[] {
              Pointer.NULL,
              size,
              PROT_READ_WRITE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
              -1,
              0L
            });
    long address = Pointer.nativeValue(p);
    if (p == null || address == -1L) {
      throw new EngineMemoryException(
          what
              + " could not reserve "
              + EngineMemory.mib(size)
              + " MiB of address space (errno "
              + Native.getLastError()
              + ")");
    }
    return new ReservedRegion(address, size);
  }

  long bytes() {
    return bytes;
  }

  /** A direct buffer (native byte order) over {@code [offset, offset + length)}. */
  ByteBuffer buffer(long offset, long length) {
    check(offset, length);
    if (length > EngineMemory.MAX_BUFFER_BYTES) {
      throw new IllegalArgumentException("one buffer of " + length + " bytes");
    }
    return new Pointer(address).getByteBuffer(offset, length).order(ByteOrder.nativeOrder());
  }

  /**
   * Gives the memory of the whole OS pages inside {@code [offset, offset + length)} back to the
   * system; they read as zeros when touched again. Partial pages at either end keep their contents.
   */
  void decommit(long offset, long length) {
    check(offset, length);
    long from = (address + offset + OS_PAGE - 1) & -OS_PAGE;
    long to = (address + offset + length) & -OS_PAGE;
    if (to <= from) return;
    int rc = LIBC.madvise.invokeInt(new Object[] {new Pointer(from), to - from, MADV_DONTNEED});
    if (rc != 0) {
      // The memory stays resident (and counted by the caller as freed): harmless but logged
      LOG.warning("madvise(MADV_DONTNEED) failed, errno " + Native.getLastError());
    }
  }

  @Override
  public void close() {
    if (closed) return;
    closed = true;
    int rc = LIBC.munmap.invokeInt(new Object[] {new Pointer(address), bytes});
    if (rc != 0) LOG.warning("munmap failed, errno " + Native.getLastError());
  }

  private void check(long offset, long length) {
    if (closed) throw new IllegalStateException("region closed");
    if (offset < 0 || length < 0 || offset > bytes - length) {
      throw new IndexOutOfBoundsException(
          "[" + offset + ", +" + length + ") of a region of " + bytes + " bytes");
    }
  }

  /**
   * libc's mmap, madvise and munmap, where they can be called with 64-bit sizes and the flag values
   * above are Linux's (x86-64 and aarch64), and where the kernel honours {@code MAP_NORESERVE} (not
   * under {@code vm.overcommit_memory=2}, which would charge every reservation in full).
   */
  private record Libc(Function mmap, Function madvise, Function munmap, long pageSize) {
    static Libc find() {
      if (System.getProperty("org.graalvm.nativeimage.imagecode") != null) {
        LOG.info("KV buffers are JVM direct buffers: no JNA in a native image");
        return null;
      }
      try {
        if (!Platform.isLinux()
            || !Platform.is64Bit()
            || !(Platform.isIntel() || Platform.isARM())
            || Native.SIZE_T_SIZE != 8) {
          LOG.info(
              "KV buffers are JVM direct buffers: reserved regions need x86-64 or aarch64 Linux");
          return null;
        }
        if (strictOvercommit()) {
          LOG.info(
              "KV buffers are JVM direct buffers: vm.overcommit_memory=2 would charge every"
                  + " reservation in full");
          return null;
        }
        NativeLibrary c = NativeLibrary.getInstance(Platform.C_LIBRARY_NAME);
        long page = c.getFunction("sysconf").invokeLong(new Object[] {SC_PAGESIZE});
        if (page <= 0 || Long.bitCount(page) != 1) {
          LOG.info("KV buffers are JVM direct buffers: page size " + page);
          return null;
        }
        return new Libc(
            c.getFunction("mmap"), c.getFunction("madvise"), c.getFunction("munmap"), page);
      } catch (RuntimeException | LinkageError e) {
        LOG.log(Level.INFO, "KV buffers are JVM direct buffers: JNA is not usable here", e);
        return null;
      }
    }

    private static boolean strictOvercommit() {
      try {
        return Files.readString(Path.of("/proc/sys/vm/overcommit_memory")).trim().equals("2");
      } catch (IOException | RuntimeException e) {
        return false;
      }
    }
  }
}
