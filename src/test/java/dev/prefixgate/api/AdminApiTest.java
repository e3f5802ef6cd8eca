package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.specification.RequestSpecification;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.GZIPOutputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The admin API on a real database: tenants, keys, uploads, versions, datasets. */
@QuarkusTest
class AdminApiTest {
  static final String ADMIN = "pg-admin-test";
  static final Path ADAPTERS = Path.of("trainer/fixtures/adapters");

  static RequestSpecification admin() {
    return given().auth().oauth2(ADMIN);
  }

  static byte[] file(String adapter, String name) {
    try {
      return Files.readAllBytes(ADAPTERS.resolve(adapter).resolve(name));
    } catch (IOException e) {
      throw new AssertionError(e);
    }
  }

  static String createTenant(String id) {
    return admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"" + id + "\",\"name\":\"T\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(201)
        .extract()
        .path("apiKey");
  }

  static io.restassured.response.Response upload(
      String tenant, String name, byte[] config, byte[] weights) {
    return admin()
        .multiPart("adapter_config", "adapter_config.json", config, "application/json")
        .multiPart(
            "adapter_model", "adapter_model.safetensors", weights, "application/octet-stream")
        .post("/admin/tenants/" + tenant + "/adapters/" + name);
  }

  static io.restassured.response.Response uploadArchive(
      String tenant, String name, byte[] archive) {
    return admin()
        .multiPart("archive", "adapter.bin", archive, "application/octet-stream")
        .post("/admin/tenants/" + tenant + "/adapters/" + name);
  }

  static List<Integer> greedyIds(String key, String model, String caseId) {
    String body =
        "{\"model\":\""
            + model
            + "\",\"prompt\":"
            + JsonQuote.of(Golden.of(caseId).get("prompt").asText())
            + ",\"temperature\":0,\"max_tokens\":32,\"ignore_eos\":true,\"return_token_ids\":true}";
    return given()
        .auth()
        .oauth2(key)
        .contentType(ContentType.JSON)
        .body(body)
        .post("/v1/completions")
        .then()
        .statusCode(200)
        .extract()
        .jsonPath()
        .getList("choices[0].token_ids", Integer.class);
  }

  @Test
  void adminEndpointsNeedTheAdminKey() {
    given()
        .get("/admin/tenants")
        .then()
        .statusCode(401)
        .body("error.code", equalTo("invalid_admin_key"));
    given().auth().oauth2(OpenAiApiTest.ACME).get("/admin/tenants").then().statusCode(401);
    admin().get("/admin/tenants").then().statusCode(200);
  }

  @Test
  void tenantsAndKeys() {
    String key = createTenant("t-keys");
    given().auth().oauth2(key).get("/v1/models").then().statusCode(200);
    admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"t-keys\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(409);
    admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"Bad Id!\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(400)
        .body("error.param", equalTo("id"));
    String second =
        admin().post("/admin/tenants/t-keys/keys").then().statusCode(201).extract().path("apiKey");
    given().auth().oauth2(second).get("/v1/models").then().statusCode(200);
    String firstId =
        admin().get("/admin/tenants/t-keys/keys").then().statusCode(200).extract().path("[0].id");
    admin().delete("/admin/tenants/t-keys/keys/" + firstId).then().statusCode(204);
    given().auth().oauth2(key).get("/v1/models").then().statusCode(401);
    given().auth().oauth2(second).get("/v1/models").then().statusCode(200);
  }

  /**
   * A stock PEFT upload serves PEFT's exact ids; a new version and a rollback switch the output.
   */
  @Test
  void uploadVersionAndRollbackChangeTheOutputExactly() {
    String key = createTenant("t-up");
    upload(
            "t-up",
            "style",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(201)
        .body("version", equalTo(1))
        .body("status", equalTo("ACTIVE"))
        .body("numVirtualTokens", equalTo(8));
    upload(
            "t-up",
            "style",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(200)
        .body("version", equalTo(1));
    assertEquals(Golden.newIds("acme/0"), greedyIds(key, "style", "acme/0"));
    upload(
            "t-up",
            "style",
            file("globex", "adapter_config.json"),
            file("globex", "adapter_model.safetensors"))
        .then()
        .statusCode(201)
        .body("version", equalTo(2))
        .body("status", equalTo("ACTIVE"));
    assertEquals(Golden.newIds("globex/0"), greedyIds(key, "style", "globex/0"));
    assertEquals(Golden.newIds("acme/0"), greedyIds(key, "style@1", "acme/0"));
    admin()
        .post("/admin/tenants/t-up/adapters/style/versions/1/activate")
        .then()
        .statusCode(200)
        .body("status", equalTo("ACTIVE"));
    assertEquals(Golden.newIds("acme/0"), greedyIds(key, "style", "acme/0"));
    admin()
        .get("/admin/tenants/t-up/adapters/style")
        .then()
        .statusCode(200)
        .body("size()", equalTo(2))
        .body("[1].status", equalTo("REGISTERED"));
  }

  @Test
  void zipAndTarGzOfASavePretrainedFolderAreAccepted() throws IOException {
    createTenant("t-arch");
    byte[] zip =
        zip(
            "acme/",
            "acme/adapter_config.json",
            file("acme", "adapter_config.json"),
            "acme/adapter_model.safetensors",
            file("acme", "adapter_model.safetensors"),
            "acme/README.md",
            file("acme", "README.md"));
    uploadArchive("t-arch", "a", zip).then().statusCode(201).body("version", equalTo(1));
    byte[] tgz =
        tarGz(
            "adapter_config.json",
            file("initech", "adapter_config.json"),
            "adapter_model.safetensors",
            file("initech", "adapter_model.safetensors"));
    uploadArchive("t-arch", "a", tgz)
        .then()
        .statusCode(201)
        .body("version", equalTo(2))
        .body("numVirtualTokens", equalTo(4));
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "truncated",
        "header-too-long",
        "wrong-dtype",
        "wrong-shape",
        "nan",
        "wrong-peft-type",
        "zip-slip",
        "zip-bomb",
        "missing-file",
        "not-an-archive"
      })
  void badUploadsAreRefusedAndLeaveNoTrace(String kind) throws IOException {
    String tenant = "t-bad-" + kind;
    createTenant(tenant);
    byte[] cfg = file("acme", "adapter_config.json");
    byte[] st = file("acme", "adapter_model.safetensors");
    io.restassured.response.Response r =
        switch (kind) {
          case "truncated" -> upload(tenant, "x", cfg, Arrays.copyOf(st, st.length - 100));
          case "header-too-long" -> {
            byte[] bad = st.clone();
            ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN).putLong(0, st.length + 1000L);
            yield upload(tenant, "x", cfg, bad);
          }
          case "wrong-dtype" -> upload(tenant, "x", cfg, replaceInHeader(st, "\"F32\"", "\"I32\""));
          case "wrong-shape" ->
              upload(
                  tenant,
                  "x",
                  new String(cfg, StandardCharsets.UTF_8)
                      .replace("\"num_layers\": 3", "\"num_layers\": 2")
                      .getBytes(StandardCharsets.UTF_8),
                  st);
          case "nan" -> {
            byte[] bad = st.clone();
            int data = 8 + (int) ByteBuffer.wrap(st).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN).putFloat(data + 40, Float.NaN);
            yield upload(tenant, "x", cfg, bad);
          }
          case "wrong-peft-type" ->
              upload(
                  tenant,
                  "x",
                  new String(cfg, StandardCharsets.UTF_8)
                      .replace("PREFIX_TUNING", "LORA")
                      .getBytes(StandardCharsets.UTF_8),
                  st);
          case "zip-slip" ->
              uploadArchive(
                  tenant,
                  "x",
                  zip("../../etc/adapter_config.json", cfg, "adapter_model.safetensors", st));
          case "zip-bomb" ->
              uploadArchive(
                  tenant,
                  "x",
                  zip(
                      "adapter_config.json",
                      cfg,
                      "adapter_model.safetensors",
                      new byte[70 * 1024 * 1024]));
          case "missing-file" -> uploadArchive(tenant, "x", zip("adapter_config.json", cfg));
          case "not-an-archive" ->
              uploadArchive(tenant, "x", "hello".getBytes(StandardCharsets.UTF_8));
          default -> throw new AssertionError(kind);
        };
    r.then().statusCode(400).body("error.code", equalTo("invalid_adapter"));
    admin()
        .get("/admin/tenants/" + tenant + "/adapters")
        .then()
        .statusCode(200)
        .body("size()", equalTo(0));
    // The same tenant can still upload a good adapter afterwards.
    upload(tenant, "x", cfg, st).then().statusCode(201).body("version", equalTo(1));
  }

  @Test
  void retiringTheActiveVersionNeedsForce() {
    createTenant("t-retire");
    upload(
            "t-retire",
            "a",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    upload(
            "t-retire",
            "a",
            file("globex", "adapter_config.json"),
            file("globex", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    admin()
        .delete("/admin/tenants/t-retire/adapters/a/versions/2")
        .then()
        .statusCode(409)
        .body("error.message", containsString("force=true"));
    admin().delete("/admin/tenants/t-retire/adapters/a/versions/1").then().statusCode(204);
    admin()
        .delete("/admin/tenants/t-retire/adapters/a/versions/2?force=true")
        .then()
        .statusCode(204);
    admin().delete("/admin/tenants/t-retire/adapters/a/versions/9").then().statusCode(404);
  }

  @Test
  void datasetsAreValidatedLineByLine() throws IOException {
    createTenant("t-data");
    byte[] good = Files.readAllBytes(Path.of("trainer/fixtures/datasets/acme.jsonl"));
    String id =
        admin()
            .contentType("application/x-ndjson")
            .body(good)
            .post("/admin/tenants/t-data/datasets?name=pirate")
            .then()
            .statusCode(201)
            .body("records", equalTo(160))
            .extract()
            .path("id");
    byte[] back =
        admin()
            .get("/admin/tenants/t-data/datasets/" + id)
            .then()
            .statusCode(200)
            .extract()
            .asByteArray();
    assertArrayEquals(good, back);
    admin()
        .contentType("application/x-ndjson")
        .body(
            "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"a\"}\n"
                .getBytes(StandardCharsets.UTF_8))
        .post("/admin/tenants/t-data/datasets")
        .then()
        .statusCode(400)
        .body("error.message", containsString("line 2: 'output'"));
    admin().get("/admin/tenants/t-data/datasets").then().statusCode(200).body("size()", equalTo(1));
  }

  /** Every response is generated by one version from start to end, even while versions flip. */
  @Test
  void activationsDuringLoadNeverMixVersionsWithinAResponse() throws Exception {
    String key = createTenant("t-swap");
    upload(
            "t-swap",
            "s",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    upload(
            "t-swap",
            "s",
            file("globex", "adapter_config.json"),
            file("globex", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    ExecutorService pool = Executors.newFixedThreadPool(4);
    try {
      List<Future<List<Integer>>> results = new ArrayList<>();
      for (int i = 0; i < 16; i++) results.add(pool.submit(() -> greedyIds(key, "s", "acme/0")));
      for (int i = 0; i < 20; i++) {
        admin()
            .post("/admin/tenants/t-swap/adapters/s/versions/" + (1 + i % 2) + "/activate")
            .then()
            .statusCode(200);
      }
      for (Future<List<Integer>> f : results) {
        List<Integer> ids = f.get();
        // Exactly one version's golden output, whichever was active when the request started.
        if (!ids.equals(Golden.newIds("acme/0")) && !ids.equals(Golden.newIds("globex/0"))) {
          throw new AssertionError("a response mixed versions: " + ids);
        }
      }
      // Both versions are servable and distinct: pinned requests get each one's own output.
      assertEquals(Golden.newIds("acme/0"), greedyIds(key, "s@1", "acme/0"));
      assertEquals(Golden.newIds("globex/0"), greedyIds(key, "s@2", "acme/0"));
    } finally {
      pool.shutdownNow();
    }
  }

  static byte[] replaceInHeader(byte[] st, String from, String to) {
    assertEquals(from.length(), to.length());
    int len = (int) ByteBuffer.wrap(st).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
    String header = new String(st, 8, len, StandardCharsets.UTF_8);
    assertTrue(header.contains(from), header);
    byte[] out = st.clone();
    byte[] h = header.replace(from, to).getBytes(StandardCharsets.UTF_8);
    System.arraycopy(h, 0, out, 8, h.length);
    return out;
  }

  static byte[] zip(Object... namesAndData) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ZipOutputStream z = new ZipOutputStream(bytes)) {
      for (int i = 0; i < namesAndData.length; ) {
        String name = (String) namesAndData[i++];
        z.putNextEntry(new ZipEntry(name));
        if (!name.endsWith("/")) z.write((byte[]) namesAndData[i++]);
        z.closeEntry();
      }
    }
    return bytes.toByteArray();
  }

  static byte[] tarGz(Object... namesAndData) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (TarArchiveOutputStream t = new TarArchiveOutputStream(new GZIPOutputStream(bytes))) {
      for (int i = 0; i < namesAndData.length; i += 2) {
        byte[] data = (byte[]) namesAndData[i + 1];
        TarArchiveEntry e = new TarArchiveEntry((String) namesAndData[i]);
        e.setSize(data.length);
        t.putArchiveEntry(e);
        t.write(data);
        t.closeArchiveEntry();
      }
    }
    return bytes.toByteArray();
  }
}
