package dev.prefixgate.engine;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;

/**
 * A PEFT prefix-tuning adapter exactly as {@code save_pretrained} writes it, validated against the
 * served model and turned into per-layer prefix KV.
 *
 * <p>{@code prompt_embeddings} is {@code [P, 2·L·D]} (PEFT applied the projection MLP before
 * saving). Layer i's prefix is {@code view(P, 2L, H, D/H)} transposed to {@code [2L, H, P, D/H]}:
 * key = slice 2i, value = slice 2i+1. Nothing is returned unless every check passes.
 *
 * @param numVirtualTokens P
 * @param baseModel {@code base_model_name_or_path}, recorded, not enforced (names differ across
 *     hosts)
 * @param digest sha256 of the safetensors bytes, hex; the registry keys everything by it
 */
public record PrefixAdapter(int numVirtualTokens, String baseModel, String digest, PrefixKv kv) {

  /** Upper bound on P: longer prefixes are almost surely a mistake and cost memory per row. */
  public static final int MAX_VIRTUAL_TOKENS = 1024;

  /**
   * Reads and validates an adapter.
   *
   * @param adapterConfigJson bytes of {@code adapter_config.json}
   * @param safetensors bytes of {@code adapter_model.safetensors}
   * @param model the served model's config; layers, heads and width must match
   */
  public static PrefixAdapter read(byte[] adapterConfigJson, byte[] safetensors, ModelConfig model)
      throws AdapterFormatException {
    JsonNode cfg = parseConfig(adapterConfigJson);
    requireText(cfg, "peft_type", "PREFIX_TUNING");
    requireText(cfg, "task_type", "CAUSAL_LM");
    int p = intField(cfg, "num_virtual_tokens", 1, MAX_VIRTUAL_TOKENS);
    int layers = intField(cfg, "num_layers", 1, Integer.MAX_VALUE);
    int heads = intField(cfg, "num_attention_heads", 1, Integer.MAX_VALUE);
    int dim = intField(cfg, "token_dim", 1, Integer.MAX_VALUE);
    if (cfg.has("num_transformer_submodules")
        && cfg.get("num_transformer_submodules").asInt() != 1) {
      throw new AdapterFormatException(
          "adapter_config.num_transformer_submodules",
          cfg.get("num_transformer_submodules") + " is not 1 (decoder-only models have one)");
    }
    mustMatch("num_layers", layers, model.nLayer());
    mustMatch("num_attention_heads", heads, model.nHead());
    mustMatch("token_dim", dim, model.hiddenSize());
    String base = cfg.path("base_model_name_or_path").asText("");

    Map<String, Safetensors.Tensor> tensors = Safetensors.parse(safetensors);
    Safetensors.Tensor emb = tensors.get("prompt_embeddings");
    if (emb == null) {
      throw new AdapterFormatException(
          "adapter_model.safetensors",
          "no tensor 'prompt_embeddings' (found " + tensors.keySet() + ")");
    }
    if (tensors.size() != 1) {
      throw new AdapterFormatException(
          "adapter_model.safetensors",
          "unexpected tensors besides prompt_embeddings: " + tensors.keySet());
    }
    if (!emb.dtype().equals("F32") && !emb.dtype().equals("F16") && !emb.dtype().equals("BF16")) {
      throw new AdapterFormatException(
          "adapter_model.safetensors[prompt_embeddings].dtype",
          emb.dtype() + " is not F32, F16 or BF16");
    }
    long[] shape = emb.shape();
    long width = 2L * layers * dim;
    if (shape.length != 2 || shape[0] != p || shape[1] != width) {
      throw new AdapterFormatException(
          "adapter_model.safetensors[prompt_embeddings].shape",
          java.util.Arrays.toString(shape) + " but the config needs [" + p + ", " + width + "]");
    }
    float[] values = emb.toFloats();
    for (int i = 0; i < values.length; i++) {
      if (!Float.isFinite(values[i])) {
        throw new AdapterFormatException(
            "adapter_model.safetensors[prompt_embeddings]",
            "non-finite value " + values[i] + " at row " + (i / width) + ", column " + (i % width));
      }
    }
    return new PrefixAdapter(
        p, base, sha256(safetensors), toKv(values, p, layers, heads, dim / heads));
  }

  /** [P, 2L, H, d] → per layer [H, P, d] for keys (slice 2i) and values (slice 2i+1). */
  static PrefixKv toKv(float[] emb, int p, int layers, int heads, int headDim) {
    FloatBuffer[] keys = new FloatBuffer[layers];
    FloatBuffer[] vals = new FloatBuffer[layers];
    int block = heads * p * headDim;
    for (int layer = 0; layer < layers; layer++) {
      keys[layer] = direct(block);
      vals[layer] = direct(block);
      for (int kv = 0; kv < 2; kv++) {
        FloatBuffer out = kv == 0 ? keys[layer] : vals[layer];
        int slice = 2 * layer + kv;
        for (int h = 0; h < heads; h++) {
          for (int t = 0; t < p; t++) {
            int src = ((t * 2 * layers + slice) * heads + h) * headDim;
            out.put((h * p + t) * headDim, emb, src, headDim);
          }
        }
      }
    }
    return new PrefixKv(p, keys, vals);
  }

  static FloatBuffer direct(int floats) {
    return ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  public static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static JsonNode parseConfig(byte[] json) throws AdapterFormatException {
    try {
      JsonNode n = new ObjectMapper().readTree(json);
      if (n == null || !n.isObject()) {
        throw new AdapterFormatException("adapter_config", "must be a JSON object");
      }
      return n;
    } catch (JsonProcessingException e) {
      throw new AdapterFormatException("adapter_config", "invalid JSON: " + e.getOriginalMessage());
    } catch (java.io.IOException e) {
      throw new AdapterFormatException("adapter_config", "unreadable: " + e.getMessage());
    }
  }

  private static void requireText(JsonNode cfg, String field, String expected)
      throws AdapterFormatException {
    String actual = cfg.path(field).asText(null);
    if (!expected.equals(actual)) {
      throw new AdapterFormatException(
          "adapter_config." + field,
          "'" + actual + "' is not supported (expected '" + expected + "')");
    }
  }

  private static int intField(JsonNode cfg, String field, int min, int max)
      throws AdapterFormatException {
    JsonNode n = cfg.get(field);
    if (n == null || !n.canConvertToInt() || !n.isIntegralNumber()) {
      throw new AdapterFormatException(
          "adapter_config." + field, "missing or not an integer: " + n);
    }
    int v = n.asInt();
    if (v < min || v > max) {
      throw new AdapterFormatException(
          "adapter_config." + field, v + " not in [" + min + ", " + max + "]");
    }
    return v;
  }

  private static void mustMatch(String field, int adapter, int model)
      throws AdapterFormatException {
    if (adapter != model) {
      throw new AdapterFormatException(
          "adapter_config." + field,
          adapter
              + " does not match the served model ("
              + model
              + "): adapter trained for another base");
    }
  }
}
