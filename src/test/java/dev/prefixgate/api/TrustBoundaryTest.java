package dev.prefixgate.api;

import static dev.prefixgate.api.AdminApiTest.admin;
import static dev.prefixgate.api.AdminApiTest.createTenant;
import static dev.prefixgate.api.AdminApiTest.file;
import static dev.prefixgate.api.AdminApiTest.upload;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * Trust boundaries of the public port and the registry: client numbers that would overflow, bodies
 * before a key, admin fields, the trainer's scoped key, and concurrent activations. Runs on H2 and
 * (in the test command) on PostgreSQL.
 */
@QuarkusTest
class TrustBoundaryTest {
  static final String TRAINER = "pg-trainer-test";

  /** {@code prefix + prompt + max_tokens} once wrapped negative in int and passed the check. */
  @Test
  void maxTokensNearTwoToTheThirtyOneIsA400NamingTheLimit() {
    for (String endpoint : List.of("/v1/completions", "/v1/chat/completions")) {
      String body =
          endpoint.endsWith("chat/completions")
              ? "{\"model\":\"pirate\",\"max_tokens\":2147483640,"
                  + "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"
              : "{\"model\":\"pirate\",\"max_tokens\":2147483640,\"prompt\":\"Hi\"}";
      given()
          .auth()
          .oauth2(OpenAiApiTest.ACME)
          .contentType(ContentType.JSON)
          .body(body)
          .post(endpoint)
          .then()
          .statusCode(400)
          .body("error.param", equalTo("max_tokens"))
          .body("error.message", containsString("2147483640"))
          .body("error.message", containsString("context limit of 2048"));
    }
  }

  /** An empty body was a 500 (Jackson refuses a null string); it is the client's mistake. */
  @Test
  void anEmptyBodyIsA400() {
    for (String endpoint : List.of("/v1/completions", "/v1/chat/completions")) {
      given()
          .auth()
          .oauth2(OpenAiApiTest.ACME)
          .contentType(ContentType.JSON)
          .post(endpoint)
          .then()
          .statusCode(400)
          .body("error.message", containsString("JSON object"));
    }
  }

  /**
   * Vert.x's default body handler stored multipart files in ./file-uploads before any key check.
   */
  @Test
  void multipartOnV1IsRefusedAndNothingReachesTheDisk() {
    byte[] payload = new byte[256 * 1024];
    given()
        .multiPart("file", "x.bin", payload, "application/octet-stream")
        .post("/v1/chat/completions")
        .then()
        .statusCode(401)
        .body("error.code", equalTo("invalid_api_key"));
    given()
        .auth()
        .oauth2(OpenAiApiTest.ACME)
        .multiPart("file", "x.bin", payload, "application/octet-stream")
        .post("/v1/completions")
        .then()
        .statusCode(415)
        .body("error.code", equalTo("unsupported_media_type"));
    assertFalse(Files.exists(Path.of("file-uploads")), "an upload folder appeared");
  }

  @Test
  void adminJsonRefusesUnknownFieldsAndOverlongValuesAndGrantsNoBaseByDefault() {
    admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"typo-co\",\"name\":\"T\",\"alowBase\":true}")
        .post("/admin/tenants")
        .then()
        .statusCode(400)
        .body("error.message", containsString("alowBase"))
        .body("error.message", not(containsString("com.fasterxml")));
    admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"long-co\",\"name\":\"" + "n".repeat(201) + "\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(400)
        .body("error.param", equalTo("name"))
        .body("error.message", containsString("200 characters"));
    admin()
        .contentType(ContentType.JSON)
        .body("{\"id\":\"long-co\",\"defaultAdapter\":\"" + "a".repeat(300) + "\"}")
        .post("/admin/tenants")
        .then()
        .statusCode(400)
        .body("error.param", equalTo("defaultAdapter"));
    admin().get("/admin/tenants/long-co").then().statusCode(404);
    String key = createTenant("nobase-co");
    List<String> models =
        given().auth().oauth2(key).get("/v1/models").then().extract().path("data.id");
    assertEquals(List.of(), models, "base access must be granted explicitly");
    admin().get("/admin/tenants/nobase-co").then().body("allowBase", equalTo(false));
  }

  /** The trainer key reads data sets and nothing else; the admin key does not open /trainer. */
  @Test
  void trainerKeyIsScopedToReadingDataSets() {
    createTenant("trainee-co");
    byte[] jsonl = "{\"instruction\":\"a\",\"output\":\"b\"}\n".getBytes(StandardCharsets.UTF_8);
    String id =
        admin()
            .contentType("application/x-ndjson")
            .body(jsonl)
            .post("/admin/tenants/trainee-co/datasets?name=d")
            .then()
            .statusCode(201)
            .extract()
            .path("id");
    byte[] got =
        given()
            .auth()
            .oauth2(TRAINER)
            .get("/trainer/tenants/trainee-co/datasets/" + id)
            .then()
            .statusCode(200)
            .extract()
            .asByteArray();
    assertEquals(
        new String(jsonl, StandardCharsets.UTF_8), new String(got, StandardCharsets.UTF_8));
    given()
        .auth()
        .oauth2(AdminApiTest.ADMIN)
        .get("/trainer/tenants/trainee-co/datasets/" + id)
        .then()
        .statusCode(401);
    given().auth().oauth2(TRAINER).get("/admin/tenants").then().statusCode(401);
    given()
        .auth()
        .oauth2(TRAINER)
        .get("/trainer/tenants/acme/datasets/" + id)
        .then()
        .statusCode(404);
  }

  /** Concurrent activations used to leave two ACTIVE rows; the schema now holds one. */
  @Test
  void concurrentActivationsLeaveExactlyOneActiveVersion() throws Exception {
    createTenant("race-co");
    upload(
            "race-co",
            "flip",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    upload(
            "race-co",
            "flip",
            file("initech", "adapter_config.json"),
            file("initech", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    ExecutorService pool = Executors.newFixedThreadPool(8);
    CountDownLatch go = new CountDownLatch(1);
    List<Future<Integer>> calls = new ArrayList<>();
    for (int i = 0; i < 32; i++) {
      int version = 1 + i % 2;
      calls.add(
          pool.submit(
              () -> {
                go.await();
                return admin()
                    .post("/admin/tenants/race-co/adapters/flip/versions/" + version + "/activate")
                    .statusCode();
              }));
    }
    go.countDown();
    for (Future<Integer> f : calls) {
      int status = f.get();
      if (status != 200 && status != 409) throw new AssertionError("activation answered " + status);
    }
    pool.shutdown();
    List<String> statuses =
        admin().get("/admin/tenants/race-co/adapters/flip").then().extract().path("status");
    assertEquals(1, statuses.stream().filter("ACTIVE"::equals).count(), statuses.toString());
  }
}
