package dev.prefixgate.engine;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict reader of the safetensors format: 8-byte little-endian header length, a JSON header
 * {@code {name: {dtype, shape, data_offsets: [begin, end]}}}, then the tensor bytes.
 *
 * <p>Everything is checked before any tensor is handed out: the header length against the file size
 * and a hard limit, the header JSON, every dtype and shape, and that the offsets lie inside the
 * data section, match the shape, and tile it without overlaps or holes.
 */
public final class Safetensors {
  /** Headers larger than this are refused (the format's own reference limit is 100 MB). */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  /** One tensor's metadata and a little-endian view of its bytes. */
  public record Tensor(String name, String dtype, long[] shape, ByteBuffer data) {
    public long elementCount() {
      long n = 1;
      for (long d : shape) n *= d;
      return n;
    }

    /** Values as float32; F16 and BF16 are widened exactly. */
    public float[] toFloats() {
      int n = Math.toIntExact(elementCount());
      float[] out = new float[n];
      ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      switch (dtype) {
        case "F32" -> b.asFloatBuffer().get(out);
        case "F16" -> {
          for (int i = 0; i < n; i++) out[i] = halfToFloat(b.getShort(2 * i));
        }
        case "BF16" -> {
          for (int i = 0; i < n; i++)
            out[i] = Float.intBitsToFloat((b.getShort(2 * i) & 0xffff) << 16);
        }
        default -> throw new IllegalStateException("not a float dtype: " + dtype);
      }
      return out;
    }
  }

  /** IEEE 754 binary16 to float32, exact (Float.float16ToFloat needs Java 20). */
  static float halfToFloat(short half) {
    int h = half & 0xffff;
    int sign = (h & 0x8000) << 16;
    int exp = (h >>> 10) & 0x1f;
    int mant = h & 0x3ff;
    if (exp == 0x1f) return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
    if (exp == 0) {
      float v = mant * 0x1p-24f; // subnormal (or zero)
      return sign == 0 ? v : -v;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  private static final Map<String, Integer> DTYPE_BYTES =
      Map.ofEntries(
          Map.entry("F64", 8),
          Map.entry("F32", 4),
          Map.entry("F16", 2),
          Map.entry("BF16", 2),
          Map.entry("I64", 8),
          Map.entry("I32", 4),
          Map.entry("I16", 2),
          Map.entry("I8", 1),
          Map.entry("U8", 1),
          Map.entry("BOOL", 1));

  private Safetensors() {}

  /** Parses and validates a whole file held in memory. */
  public static Map<String, Tensor> parse(byte[] file) throws AdapterFormatException {
    final String f = "adapter_model.safetensors";
    if (file.length < 8) {
      throw new AdapterFormatException(
          f, "file is " + file.length + " bytes, shorter than the 8-byte header length");
    }
    ByteBuffer buf = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
    long headerLen = buf.getLong(0);
    if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || headerLen > file.length - 8L) {
      throw new AdapterFormatException(
          f + ".header_length",
          "header length "
              + Long.toUnsignedString(headerLen)
              + " does not fit in a file of "
              + file.length
              + " bytes (limit "
              + MAX_HEADER_BYTES
              + ")");
    }
    JsonNode header;
    try {
      header =
          new ObjectMapper()
              .readTree(
                  new String(file, 8, (int) headerLen, java.nio.charset.StandardCharsets.UTF_8));
    } catch (JsonProcessingException e) {
      throw new AdapterFormatException(
          f + ".header", "header is not valid JSON: " + e.getOriginalMessage());
    }
    if (header == null || !header.isObject()) {
      throw new AdapterFormatException(f + ".header", "header must be a JSON object");
    }
    long dataStart = 8 + headerLen;
    long dataLen = file.length - dataStart;
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    List<long[]> ranges = new ArrayList<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String name = e.getKey();
      if (name.equals("__metadata__")) continue;
      String field = f + "[" + name + "]";
      JsonNode t = e.getValue();
      String dtype = t.path("dtype").asText("");
      Integer size = DTYPE_BYTES.get(dtype);
      if (size == null) {
        throw new AdapterFormatException(field + ".dtype", "unknown dtype '" + dtype + "'");
      }
      JsonNode shapeNode = t.path("shape");
      if (!shapeNode.isArray()) throw new AdapterFormatException(field + ".shape", "missing shape");
      long[] shape = new long[shapeNode.size()];
      long count = 1;
      long bytes;
      try {
        for (int i = 0; i < shape.length; i++) {
          JsonNode d = shapeNode.get(i);
          if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
            throw new AdapterFormatException(
                field + ".shape", "dimension " + d + " is not a non-negative integer");
          }
          shape[i] = d.asLong();
          count = Math.multiplyExact(count, Math.max(shape[i], 1)) * (shape[i] == 0 ? 0 : 1);
        }
        bytes = Math.multiplyExact(count, (long) size);
      } catch (ArithmeticException overflow) {
        // The product would wrap: in a long, 2^62 F32 elements "need" 0 bytes.
        throw new AdapterFormatException(
            field + ".shape", shapeNode + " of " + dtype + " does not fit in 2^63 bytes");
      }
      JsonNode off = t.path("data_offsets");
      if (!off.isArray()
          || off.size() != 2
          || !off.get(0).isIntegralNumber()
          || !off.get(1).isIntegralNumber()
          || !off.get(0).canConvertToLong()
          || !off.get(1).canConvertToLong()) {
        throw new AdapterFormatException(field + ".data_offsets", "must be [begin, end]");
      }
      long begin = off.get(0).asLong();
      long end = off.get(1).asLong();
      if (begin < 0 || end < begin || end > dataLen) {
        throw new AdapterFormatException(
            field + ".data_offsets",
            "[" + begin + ", " + end + "] outside the data section of " + dataLen + " bytes");
      }
      if (end - begin != bytes) {
        throw new AdapterFormatException(
            field + ".data_offsets",
            (end - begin)
                + " bytes but shape "
                + java.util.Arrays.toString(shape)
                + " of "
                + dtype
                + " needs "
                + bytes);
      }
      ranges.add(new long[] {begin, end});
      ByteBuffer data =
          ByteBuffer.wrap(file, (int) (dataStart + begin), (int) (end - begin))
              .slice()
              .order(ByteOrder.LITTLE_ENDIAN);
      tensors.put(name, new Tensor(name, dtype, shape, data));
    }
    ranges.sort(Comparator.comparingLong(r -> r[0]));
    long expected = 0;
    for (long[] r : ranges) {
      if (r[0] != expected) {
        throw new AdapterFormatException(
            f + ".data_offsets",
            r[0] < expected
                ? "tensors overlap at byte " + r[0]
                : "hole in the data section at byte " + expected);
      }
      expected = r[1];
    }
    if (expected != dataLen) {
      throw new AdapterFormatException(
          f + ".data_offsets",
          "tensors cover "
              + expected
              + " of "
              + dataLen
              + " data bytes (truncated or trailing bytes)");
    }
    return tensors;
  }
}
