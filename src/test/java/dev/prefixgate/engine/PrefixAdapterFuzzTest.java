package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.Arrays;

/**
 * A whole adapter (adapter_config.json plus safetensors) against a tiny model: a {@link
 * PrefixAdapter} or {@link AdapterFormatException}. Input layout: two bytes (big-endian) giving the
 * config's length, the config, then the safetensors file.
 */
class PrefixAdapterFuzzTest {
  /** 2 layers, 2 heads, width 4: prompt_embeddings is [P, 16]. */
  static final ModelConfig MODEL = new ModelConfig(2, 2, 4, 250, 2, 3);

  @FuzzTest(maxDuration = "10s")
  void read(byte[] input) {
    if (input.length < 2) return;
    int n = Math.min(((input[0] & 0xff) << 8) | (input[1] & 0xff), input.length - 2);
    byte[] config = Arrays.copyOfRange(input, 2, 2 + n);
    byte[] weights = Arrays.copyOfRange(input, 2 + n, input.length);
    PrefixAdapter a;
    try {
      a = PrefixAdapter.read(config, weights, MODEL);
    } catch (AdapterFormatException e) {
      return;
    }
    assertEquals(MODEL.nLayer(), a.kv().layers());
    assertEquals(a.numVirtualTokens(), a.kv().length());
  }
}
