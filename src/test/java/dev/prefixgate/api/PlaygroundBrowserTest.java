package dev.prefixgate.api;

import static dev.prefixgate.api.AdminApiTest.createTenant;
import static dev.prefixgate.api.AdminApiTest.file;
import static dev.prefixgate.api.AdminApiTest.upload;
import static dev.prefixgate.api.AdminApiTest.uploadArchive;
import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.openqa.selenium.By;

/**
 * The browser playground served at {@code /}, in a real headless Chromium: streaming chat gives
 * PEFT's golden text with TTFT and tokens/s shown, the side-by-side view streams two adapters'
 * different answers, an upload and an activation in the admin view change the chat's answer, and a
 * bad upload shows the server's own error message. Each test that changes the registry has its own
 * tenant; the demo tenants are only read. Screenshots land in target/playground-screenshots.
 */
@QuarkusTest
class PlaygroundBrowserTest {
  static final Path ADAPTERS = AdminApiTest.ADAPTERS;

  @TestHTTPResource("/")
  URL root;

  static PlaygroundBrowser browser;

  @BeforeEach
  void page() {
    if (browser == null) browser = PlaygroundBrowser.start(root);
    browser.open();
  }

  @AfterAll
  static void quit() {
    if (browser != null) browser.close();
  }

  static void assertStartsWith(String prefix, String actual) {
    assertTrue(actual.startsWith(prefix), () -> "'" + actual + "' does not start with " + prefix);
  }

  /** The question of a golden chat prompt ({@code Human: …\n\nAssistant:}). */
  static String question(String goldenId) {
    String prompt = Golden.of(goldenId).get("prompt").asText();
    return prompt.substring("Human: ".length(), prompt.length() - "\n\nAssistant:".length());
  }

  @Test
  void thePageIsPublicStaticAndSelfContained() {
    // No key needed for the page and its two files; everything is served from this origin.
    for (String path : List.of("/", "/playground.js", "/playground.css")) {
      given().get(path).then().statusCode(200);
    }
    given().get("/").then().contentType(org.hamcrest.Matchers.startsWith("text/html"));
    String html = given().get("/").asString();
    assertTrue(html.contains("Content-Security-Policy"), "the page pins its sources to itself");
    assertTrue(!html.contains("http://") && !html.contains("https://"), "no external resource");
  }

  @ParameterizedTest
  @CsvSource({"acme/0,pg-demo-acme,pirate", "xuetang/4,pg-demo-xuetang,tutor"})
  void chatStreamsTheGoldenTextWithTtftAndTokensPerSecond(String id, String key, String model) {
    browser.tenantKey(key);
    assertEquals(model, browser.find("chat-model").getDomProperty("value"), "the default adapter");
    String answer = browser.chat(model, question(id), 32);
    assertEquals(Golden.textUntilEos(id), answer);
    assertTrue(
        browser.text("chat-stat-model").startsWith(model + "@"), browser.text("chat-stat-model"));
    assertTrue(browser.text("chat-ttft").matches("\\d+"), "TTFT " + browser.text("chat-ttft"));
    assertTrue(
        browser.text("chat-tps").matches("\\d+\\.\\d"), "tokens/s " + browser.text("chat-tps"));
    // The usage chunk's count (stream_options.include_usage): the golden ids up to their eos.
    assertEquals(
        String.valueOf(Golden.idsUntilEos(id).size()), browser.text("chat-tokens"), "tokens");
    assertEquals("stop", browser.text("chat-finish"));
    if (id.equals("acme/0")) browser.screenshot("chat");

    // Keys are kept in the page's memory only: nothing in storage or cookies, gone on reload.
    Object stored =
        browser
            .driver()
            .executeScript(
                "return [localStorage.length, sessionStorage.length, document.cookie].join('|')");
    assertEquals("0|0|", stored);
    browser.open();
    assertEquals("", browser.find("tenant-key").getDomProperty("value"));
  }

  @Test
  void sideBySideStreamsTwoAdaptersAtOnceWithDifferentAnswers() {
    String key = createTenant("play-compare");
    upload(
            "play-compare",
            "pirate",
            file("acme", "adapter_config.json"),
            file("acme", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    upload(
            "play-compare",
            "formal",
            file("globex", "adapter_config.json"),
            file("globex", "adapter_model.safetensors"))
        .then()
        .statusCode(201);
    browser.tenantKey(key);
    browser.tab("compare");
    browser.choose("cmp-model-a", "pirate");
    browser.choose("cmp-model-b", "formal");
    browser.type("cmp-temperature", "0");
    browser.type("cmp-max-tokens", "32");
    browser.type("cmp-prompt", question("acme/0"));
    browser.click("cmp-run");
    for (String pane : List.of("cmp-a", "cmp-b")) {
      String state =
          browser.await(
              d -> {
                String s = d.findElement(By.id(pane)).getDomAttribute("data-state");
                return s.equals("done") || s.equals("error") ? s : null;
              });
      assertEquals("done", state, () -> pane + ": " + browser.text(pane));
    }
    String a =
        browser.driver().findElement(By.cssSelector("#cmp-a .out")).getDomProperty("textContent");
    String b =
        browser.driver().findElement(By.cssSelector("#cmp-b .out")).getDomProperty("textContent");
    assertEquals(Golden.textUntilEos("acme/0"), a);
    assertEquals(Golden.textUntilEos("globex/0"), b);
    assertNotEquals(a, b);
    for (String pane : List.of("cmp-a", "cmp-b")) {
      String ttft =
          browser
              .driver()
              .findElement(By.cssSelector("#" + pane + " .ttft"))
              .getDomProperty("textContent");
      assertTrue(ttft.matches("\\d+"), pane + " TTFT " + ttft);
    }
    browser.screenshot("side-by-side");
  }

  /**
   * In the admin view: a new tenant, its key used by the chat, an upload (a folder) that answers as
   * the uploaded adapter, a second version (an archive) kept inactive (the answer stays), its
   * activation (the answer changes), a pinned version, and a rollback.
   */
  @Test
  void anUploadAndAnActivationChangeTheAnswer(@TempDir Path dir) throws Exception {
    String tenant = "play-upload";
    String prompt = question("acme/0");
    String pirate = Golden.textUntilEos("acme/0");
    String formal = Golden.textUntilEos("globex/0");
    browser.adminKey(PlaygroundBrowser.ADMIN);
    assertTrue(browser.createTenant(tenant, "Playground upload").startsWith("pg-"));
    assertEquals(tenant, browser.find("adm-tenant").getDomProperty("value"));

    browser.type("up-name", "style");
    // v1 as the folder save_pretrained wrote (its README.md comes along and is left out).
    browser.files("up-folder", ADAPTERS.resolve("acme"));
    browser.click("up-submit");
    assertStartsWith("style v1: ACTIVE, 8 virtual tokens", browser.ok("adm-upload-msg"));
    assertEquals(pirate, browser.chat("style", prompt, 32));

    browser.tab("admin");
    browser.find("up-activate").click(); // off: register v2 without serving it
    // v2 as a .tar.gz of the folder.
    Path archive =
        Files.write(
            dir.resolve("globex.tar.gz"),
            AdminApiTest.tarGz(
                "adapter_config.json",
                file("globex", "adapter_config.json"),
                "adapter_model.safetensors",
                file("globex", "adapter_model.safetensors")));
    browser.files("up-archive", archive);
    browser.click("up-submit");
    assertStartsWith("style v2: REGISTERED, 16 virtual tokens", browser.ok("adm-upload-msg"));
    assertEquals(List.of("style v2 REGISTERED", "style v1 ACTIVE"), browser.versionRows());
    assertEquals(pirate, browser.chat("style", prompt, 32), "an inactive version changes nothing");
    assertEquals(formal, browser.chat("style@2", prompt, 32), "a pinned version answers as itself");

    browser.tab("admin");
    browser.activate("style", 2);
    assertEquals(List.of("style v2 ACTIVE", "style v1 REGISTERED"), browser.versionRows());
    browser.screenshot("admin");
    assertEquals(formal, browser.chat("style", prompt, 32), "the activation changes the answer");

    browser.tab("admin");
    assertEquals(
        "roll back",
        browser
            .driver()
            .findElement(By.cssSelector("#adm-versions tr[data-version='1'] button.activate"))
            .getText());
    browser.activate("style", 1);
    assertEquals(pirate, browser.chat("style", prompt, 32), "the rollback restores the answer");
  }

  /**
   * A refused upload shows exactly the message the admin API gives for the same files, and leaves
   * no version behind.
   */
  @ParameterizedTest
  @ValueSource(strings = {"truncated-safetensors", "not-an-archive", "missing-weights"})
  void aBadUploadShowsTheServersError(String kind, @TempDir Path dir) throws Exception {
    String tenant = "play-bad-" + kind;
    createTenant(tenant);
    byte[] cfg = file("acme", "adapter_config.json");
    byte[] st = file("acme", "adapter_model.safetensors");
    Path cfgFile = Files.write(dir.resolve("adapter_config.json"), cfg);
    Path input;
    io.restassured.response.Response direct;
    switch (kind) {
      case "truncated-safetensors" -> {
        byte[] bad = Arrays.copyOf(st, st.length - 100);
        input = Files.write(dir.resolve("adapter_model.safetensors"), bad);
        direct = upload(tenant, "x", cfg, bad);
      }
      case "not-an-archive" -> {
        byte[] bad = "hello".getBytes(StandardCharsets.UTF_8);
        input = Files.write(dir.resolve("adapter.zip"), bad);
        direct = uploadArchive(tenant, "x", bad);
      }
      case "missing-weights" -> {
        input = cfgFile;
        direct =
            AdminApiTest.admin()
                .multiPart("adapter_config", "adapter_config.json", cfg, "application/json")
                .post("/admin/tenants/" + tenant + "/adapters/x");
      }
      default -> throw new AssertionError(kind);
    }
    direct.then().statusCode(400);
    String expected = direct.jsonPath().getString("error.message");
    assertTrue(expected != null && !expected.isBlank());

    browser.adminKey(PlaygroundBrowser.ADMIN);
    browser.adminTenant(tenant);
    browser.type("up-name", "x");
    if (kind.equals("truncated-safetensors")) browser.files("up-files", cfgFile, input);
    else if (kind.equals("not-an-archive")) browser.files("up-archive", input);
    else browser.files("up-files", input);
    browser.click("up-submit");
    assertEquals(expected, browser.error("adm-upload-msg"));
    if (kind.equals("truncated-safetensors")) browser.screenshot("bad-upload");
    assertEquals(List.of(), browser.versionRows());
    assertEquals("This tenant has no adapters yet.", browser.text("adm-versions-msg"));
  }

  /** A refused chat shows the server's message too (here: a model the tenant does not have). */
  @Test
  void aRefusedChatShowsTheServersError() {
    String expected =
        given()
            .auth()
            .oauth2(OpenAiApiTest.ACME)
            .contentType(io.restassured.http.ContentType.JSON)
            .body(
                "{\"model\":\"pirate@999\",\"stream\":true,"
                    + "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}")
            .post("/v1/chat/completions")
            .then()
            .statusCode(404)
            .extract()
            .path("error.message");
    browser.tenantKey(OpenAiApiTest.ACME);
    browser.tab("chat");
    // A version the picker does not offer: put it in as a hand-edited option would.
    browser
        .driver()
        .executeScript(
            "const s = document.getElementById('chat-version');"
                + "const o = document.createElement('option'); o.value = 'pirate@999';"
                + "o.textContent = 'v999'; s.appendChild(o); s.value = 'pirate@999';");
    browser.type("chat-prompt", "Hi");
    browser.click("chat-send");
    assertEquals(expected, browser.error("chat-msg"));
    assertEquals("error", browser.find("chat-stats").getDomAttribute("data-state"));
  }
}
