package dev.prefixgate.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The strict adapter reader: stock PEFT files load, every malformed variant is refused by name. */
class PrefixAdapterTest {
  private static final ModelConfig MODEL = new ModelConfig(3, 4, 128, 4096, 2, 3);
  private static final String CONFIG =
      "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":2,"
          + "\"num_layers\":3,\"num_attention_heads\":4,\"token_dim\":128,"
          + "\"base_model_name_or_path\":\"x\"}";

  /** A safetensors file with one tensor, built by hand so each field can be broken on purpose. */
  static byte[] safetensors(
      String name, String dtype, long[] shape, byte[] data, long declaredEnd) {
    String header =
        "{\""
            + name
            + "\":{\"dtype\":\""
            + dtype
            + "\",\"shape\":"
            + Arrays.toString(shape)
            + ",\"data_offsets\":[0,"
            + declaredEnd
            + "]}}";
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h).put(data);
    return b.array();
  }

  static byte[] f32(float[] v) {
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float x : v) b.putFloat(x);
    return b.array();
  }

  static float[] ramp(int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) v[i] = i * 0.001f;
    return v;
  }

  private static final int WIDTH = 2 * 3 * 128;

  static byte[] good() {
    byte[] data = f32(ramp(2 * WIDTH));
    return safetensors("prompt_embeddings", "F32", new long[] {2, WIDTH}, data, data.length);
  }

  static AdapterFormatException refused(String config, byte[] file) {
    return assertThrows(
        AdapterFormatException.class,
        () -> PrefixAdapter.read(config.getBytes(StandardCharsets.UTF_8), file, MODEL));
  }

  @Test
  void stockPeftAdaptersLoadWithTheirVirtualTokenCounts() {
    assertEquals(8, Fixtures.adapter("acme").numVirtualTokens());
    assertEquals(16, Fixtures.adapter("globex").numVirtualTokens());
    assertEquals(4, Fixtures.adapter("initech").numVirtualTokens());
    PrefixAdapter a = Fixtures.adapter("acme");
    assertEquals("prefixgate/tiny-bloom-demo", a.baseModel());
    assertEquals(64, a.digest().length());
    assertEquals(3 * 2 * 4 * 8 * 32 * 4L, a.kv().bytes());
  }

  /** [P, 2L, H, d] → layer i key = slice 2i, value = slice 2i+1, each (H, P, d). */
  @Test
  void kvLayoutFollowsPeftViewAndTranspose() throws Exception {
    PrefixAdapter a = PrefixAdapter.read(CONFIG.getBytes(StandardCharsets.UTF_8), good(), MODEL);
    float[] emb = ramp(2 * WIDTH);
    int layers = 3;
    int heads = 4;
    int d = 32;
    for (int layer = 0; layer < layers; layer++) {
      for (int h = 0; h < heads; h++) {
        for (int t = 0; t < 2; t++) {
          for (int j = 0; j < d; j++) {
            float key = emb[t * WIDTH + ((2 * layer) * heads + h) * d + j];
            float value = emb[t * WIDTH + ((2 * layer + 1) * heads + h) * d + j];
            assertEquals(key, a.kv().key(layer).get((h * 2 + t) * d + j));
            assertEquals(value, a.kv().value(layer).get((h * 2 + t) * d + j));
          }
        }
      }
    }
  }

  @Test
  void halfPrecisionIsWidenedExactly() throws Exception {
    ByteBuffer data = ByteBuffer.allocate(2 * 2 * WIDTH).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 2 * WIDTH; i++) data.putShort((short) 0x3c00); // 1.0 in binary16
    byte[] file =
        safetensors(
            "prompt_embeddings", "F16", new long[] {2, WIDTH}, data.array(), data.capacity());
    PrefixAdapter a = PrefixAdapter.read(CONFIG.getBytes(StandardCharsets.UTF_8), file, MODEL);
    assertEquals(1.0f, a.kv().key(0).get(0));
    assertEquals(-2.0f, Safetensors.halfToFloat((short) 0xc000));
    assertEquals(65504f, Safetensors.halfToFloat((short) 0x7bff));
    assertEquals(0x1p-24f, Safetensors.halfToFloat((short) 0x0001));
  }

  @Test
  void truncatedFileIsRefused() {
    byte[] file = good();
    AdapterFormatException e = refused(CONFIG, Arrays.copyOf(file, file.length - 10));
    assertTrue(e.getMessage().contains("data_offsets"), e.getMessage());
  }

  @Test
  void headerLengthLargerThanFileIsRefused() {
    byte[] file = good();
    ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).putLong(0, file.length * 2L);
    assertEquals("adapter_model.safetensors.header_length", refused(CONFIG, file).field());
    assertEquals("adapter_model.safetensors", refused(CONFIG, new byte[] {1, 2, 3}).field());
  }

  @Test
  void invalidHeaderJsonIsRefused() {
    byte[] file = good();
    file[9] = '#';
    assertEquals("adapter_model.safetensors.header", refused(CONFIG, file).field());
  }

  @Test
  void unknownDtypeIsRefused() {
    byte[] data = f32(ramp(2 * WIDTH));
    byte[] file = safetensors("prompt_embeddings", "F31", new long[] {2, WIDTH}, data, data.length);
    assertEquals(
        "adapter_model.safetensors[prompt_embeddings].dtype", refused(CONFIG, file).field());
  }

  @Test
  void integerDtypeIsRefused() {
    byte[] data = f32(ramp(2 * WIDTH));
    byte[] file = safetensors("prompt_embeddings", "I32", new long[] {2, WIDTH}, data, data.length);
    assertEquals(
        "adapter_model.safetensors[prompt_embeddings].dtype", refused(CONFIG, file).field());
  }

  @Test
  void wrongShapeForThisBaseIsRefused() {
    byte[] data = f32(ramp(2 * 2 * 3 * 64));
    byte[] file =
        safetensors("prompt_embeddings", "F32", new long[] {2, 2 * 3 * 64}, data, data.length);
    AdapterFormatException e = refused(CONFIG, file);
    assertEquals("adapter_model.safetensors[prompt_embeddings].shape", e.field());
    assertTrue(e.getMessage().contains("[2, 768]"), e.getMessage());
  }

  @Test
  void configForAnotherBaseIsRefused() {
    String otherBase = CONFIG.replace("\"num_layers\":3", "\"num_layers\":24");
    AdapterFormatException e = refused(otherBase, good());
    assertEquals("adapter_config.num_layers", e.field());
    assertTrue(e.getMessage().contains("24 does not match the served model (3)"), e.getMessage());
  }

  @Test
  void nanIsRefusedWithItsPosition() {
    float[] v = ramp(2 * WIDTH);
    v[WIDTH + 5] = Float.NaN;
    byte[] data = f32(v);
    byte[] file = safetensors("prompt_embeddings", "F32", new long[] {2, WIDTH}, data, data.length);
    AdapterFormatException e = refused(CONFIG, file);
    assertTrue(e.getMessage().contains("NaN at row 1, column 5"), e.getMessage());
  }

  @Test
  void infinityIsRefused() {
    float[] v = ramp(2 * WIDTH);
    v[0] = Float.POSITIVE_INFINITY;
    byte[] data = f32(v);
    refused(
        CONFIG, safetensors("prompt_embeddings", "F32", new long[] {2, WIDTH}, data, data.length));
  }

  @Test
  void wrongPeftTypeIsRefused() {
    AdapterFormatException e = refused(CONFIG.replace("PREFIX_TUNING", "LORA"), good());
    assertEquals("adapter_config.peft_type", e.field());
    assertTrue(e.getMessage().contains("'LORA'"));
  }

  @Test
  void missingTensorAndExtraBytesAreRefused() {
    byte[] data = f32(ramp(2 * WIDTH));
    assertTrue(
        refused(CONFIG, safetensors("other", "F32", new long[] {2, WIDTH}, data, data.length))
            .getMessage()
            .contains("no tensor 'prompt_embeddings'"));
    byte[] longer = Arrays.copyOf(data, data.length + 4);
    assertTrue(
        refused(
                CONFIG,
                safetensors("prompt_embeddings", "F32", new long[] {2, WIDTH}, longer, data.length))
            .getMessage()
            .contains("trailing"));
  }

  @Test
  void offsetsThatDoNotMatchTheShapeAreRefused() {
    byte[] data = f32(ramp(2 * WIDTH));
    byte[] file =
        safetensors("prompt_embeddings", "F32", new long[] {2, WIDTH}, data, data.length - 4);
    assertEquals(
        "adapter_model.safetensors[prompt_embeddings].data_offsets", refused(CONFIG, file).field());
  }

  @Test
  void overlappingTensorsAreRefused() {
    String header =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + 12).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    AdapterFormatException e =
        assertThrows(AdapterFormatException.class, () -> Safetensors.parse(b.array()));
    assertTrue(e.getMessage().contains("overlap"), e.getMessage());
  }

  @Test
  void nonIntegerVirtualTokensAreRefused() {
    AdapterFormatException e =
        refused(CONFIG.replace("\"num_virtual_tokens\":2", "\"num_virtual_tokens\":\"2\""), good());
    assertEquals("adapter_config.num_virtual_tokens", e.field());
  }
}
