package dev.prefixgate.api;

import static dev.prefixgate.api.AdminApiTest.admin;
import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.not;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.prefixgate.adapter.ServingDirectory;
import dev.prefixgate.tenant.RegistryDatabase;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import jakarta.inject.Inject;
import java.net.URL;
import java.nio.file.Path;
import java.sql.DriverManager;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.awaitility.Awaitility;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Serving survives the database: with PostgreSQL stopped (the real server process, by {@code
 * deploy/local/postgres stop}) streams in flight finish and new requests of known tenants and
 * adapters succeed from the in-memory directory; admin writes answer 503 and leave nothing; after
 * the restart everything recovers without restarting the gateway. A change written by "another
 * replica" (straight into the database) is seen through the change counter. Runs in the test
 * command's PostgreSQL pass; on the in-memory H2 there is no server to stop.
 */
@QuarkusTest
class RegistryOutageTest {
  static final Path ROOT = Path.of("").toAbsolutePath();

  @Inject ServingDirectory directory;

  @TestHTTPResource("/v1/chat/completions")
  URL chatUrl;

  /** The same build serves both databases; the URL chooses (RegistryDatabase). */
  static boolean onPostgres() {
    return ConfigProvider.getConfig()
        .getOptionalValue("quarkus.datasource.jdbc.url", String.class)
        .orElse("")
        .startsWith("jdbc:postgresql:");
  }

  static void postgres(String action) throws Exception {
    Process p =
        new ProcessBuilder(ROOT.resolve("deploy/local/postgres").toString(), action)
            .inheritIO()
            .start();
    assertEquals(0, p.waitFor(), "deploy/local/postgres " + action);
  }

  static String chat(String model, int maxTokens) {
    return "{\"model\":\""
        + model
        + "\",\"stream\":true,\"temperature\":0,\"ignore_eos\":true,\"max_tokens\":"
        + maxTokens
        + ",\"messages\":[{\"role\":\"user\",\"content\":\"Tell me about Ada\"}]}";
  }

  static int complete(String key, String model) {
    return given()
        .auth()
        .oauth2(key)
        .contentType(ContentType.JSON)
        .body("{\"model\":\"" + model + "\",\"prompt\":\"Ada paints a\",\"max_tokens\":8}")
        .post("/v1/completions")
        .statusCode();
  }

  @Test
  void servingGoesOnWhilePostgresIsDownAndEverythingRecovers() throws Exception {
    Assumptions.assumeTrue(onPostgres(), "needs a PostgreSQL server to stop");
    String[][] known = {
      {OpenAiApiTest.ACME, "pirate"}, {OpenAiApiTest.GLOBEX, "formal"}, {"pg-demo-initech", "json"}
    };
    for (String[] k : known) assertEquals(200, complete(k[0], k[1]), k[1]); // loads each prefix
    ExecutorService pool = Executors.newFixedThreadPool(3);
    List<Future<Sse.Result>> streams = new ArrayList<>();
    for (String[] k : known) {
      streams.add(pool.submit(() -> Sse.post(chatUrl.toString(), k[0], chat(k[1], 600))));
    }
    postgres("stop");
    try {
      // The poller notices; from then on nothing on the serving path touches the database.
      Awaitility.await().atMost(Duration.ofSeconds(30)).until(() -> !directory.reachable());
      int failed = 0;
      for (int i = 0; i < 12; i++) {
        String[] k = known[i % known.length];
        if (complete(k[0], k[1]) != 200) failed++;
      }
      assertEquals(0, failed, "requests of known tenants and adapters failed during the outage");
      given()
          .auth()
          .oauth2(OpenAiApiTest.ACME)
          .get("/v1/models")
          .then()
          .statusCode(200)
          .body(containsString("pirate"));
      assertEquals(401, complete("pg-not-a-key", "pirate"), "an unknown key stays unknown");
      // An admin write cannot be done: a 503 that says so, never internals.
      admin()
          .contentType(ContentType.JSON)
          .body("{\"id\":\"outage-tenant\"}")
          .post("/admin/tenants")
          .then()
          .statusCode(503)
          .body("error.code", org.hamcrest.Matchers.equalTo("service_unavailable"))
          .body(not(containsString("Exception")));
      for (Future<Sse.Result> f : streams) {
        Sse.Result r = f.get();
        assertEquals(200, r.status());
        assertEquals("[DONE]", r.data().get(r.data().size() - 1), "a stream broke");
      }
    } finally {
      postgres("start");
      pool.shutdownNow();
    }
    Awaitility.await().atMost(Duration.ofSeconds(60)).until(directory::reachable);
    // Recovered without a restart: the write that failed now goes through, and it left nothing.
    Awaitility.await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () ->
                admin()
                        .contentType(ContentType.JSON)
                        .body("{\"id\":\"outage-tenant\"}")
                        .post("/admin/tenants")
                        .statusCode()
                    == 201);
  }

  /**
   * A revocation committed by another replica (here: straight into the database, the way a second
   * gateway on the same PostgreSQL writes it) stops the key here once the poller sees the change
   * counter move; a local revocation holds for the very next request.
   */
  @Test
  void revocationsFromAnyReplicaReachThisOne() throws Exception {
    String id = "revoke-" + System.nanoTime() % 100000;
    String key =
        admin()
            .contentType(ContentType.JSON)
            .body("{\"id\":\"" + id + "\",\"allowBase\":true}")
            .post("/admin/tenants")
            .then()
            .statusCode(201)
            .extract()
            .path("apiKey");
    assertEquals(200, complete(key, "base"));
    String second =
        admin()
            .post("/admin/tenants/" + id + "/keys")
            .then()
            .statusCode(201)
            .extract()
            .path("apiKey");
    String secondId =
        admin()
            .get("/admin/tenants/" + id + "/keys")
            .then()
            .extract()
            .path("find { it.prefix == '" + second.substring(0, 8) + "' }.id");
    admin().delete("/admin/tenants/" + id + "/keys/" + secondId).then().statusCode(204);
    assertEquals(401, complete(second, "base"), "a local revocation holds at once");

    long before = directory.epoch();
    // The chosen datasource's own settings, as RegistryDatabase derived them (H2's user is "sa").
    String unit =
        "quarkus.datasource.\""
            + RegistryDatabase.unitFor(
                ConfigProvider.getConfig().getValue("quarkus.datasource.jdbc.url", String.class))
            + "\".";
    String url = ConfigProvider.getConfig().getValue(unit + "jdbc.url", String.class);
    String user =
        ConfigProvider.getConfig().getOptionalValue(unit + "username", String.class).orElse("");
    String password =
        ConfigProvider.getConfig().getOptionalValue(unit + "password", String.class).orElse("");
    try (var c = DriverManager.getConnection(url, user, password);
        var s = c.createStatement()) {
      c.setAutoCommit(false);
      s.executeUpdate(
          "update api_key set revoked_at = current_timestamp where tenant_id = '" + id + "'");
      s.executeUpdate("update registry_epoch set epoch = epoch + 1 where id = 1");
      c.commit();
    }
    long t0 = System.nanoTime();
    Awaitility.await()
        .pollInterval(Duration.ofMillis(20))
        .atMost(Duration.ofSeconds(5))
        .until(() -> complete(key, "base") == 401);
    System.out.printf(
        "[registry] a revocation from another replica took %.0f ms to hold here%n",
        (System.nanoTime() - t0) / 1e6);
    assertTrue(directory.epoch() > before);
    assertFalse(directory.authenticate(key).isPresent());
  }
}
