package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.Map;

/**
 * The strict safetensors reader on arbitrary bytes: a checked map of tensors, or {@link
 * AdapterFormatException} (400 invalid_adapter). Every tensor it hands out must be readable.
 */
class SafetensorsFuzzTest {
  @FuzzTest(maxDuration = "10s")
  void parse(byte[] file) {
    Map<String, Safetensors.Tensor> tensors;
    try {
      tensors = Safetensors.parse(file);
    } catch (AdapterFormatException e) {
      return;
    }
    for (Safetensors.Tensor t : tensors.values()) {
      long bytes = t.data().remaining();
      assertEquals(bytes, t.elementCount() * bytesOf(t.dtype()), t.name());
      if (t.dtype().equals("F32") || t.dtype().equals("F16") || t.dtype().equals("BF16")) {
        assertEquals(t.elementCount(), t.toFloats().length, t.name());
      }
    }
  }

  private static int bytesOf(String dtype) {
    return switch (dtype) {
      case "F64", "I64" -> 8;
      case "F32", "I32" -> 4;
      case "F16", "BF16", "I16" -> 2;
      default -> 1;
    };
  }
}
