package dev.prefixgate.api;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.prefixgate.adapter.AdapterEventsTest;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.net.URL;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.openqa.selenium.By;

/**
 * The playground's retrain flow on a real broker, in headless Chromium: a data set uploaded from
 * the page, a retrain started from it, the job followed live (state, progress, loss) from the
 * status events, and the new version's answer shown once it is served. The worker is played by this
 * test, as in RetrainTest: it publishes the status events and the adapter event a worker would (the
 * globex fixture's weights stand in for the trained ones).
 */
@QuarkusTest
@TestProfile(AdapterEventsTest.WithKafka.class)
class PlaygroundRetrainBrowserTest {
  static final ObjectMapper JSON = new ObjectMapper();

  @TestHTTPResource("/")
  URL root;

  static PlaygroundBrowser browser;

  @AfterAll
  static void quit() {
    if (browser != null) browser.close();
  }

  @Test
  void aRetrainIsFollowedLiveUntilTheNewVersionAnswers() throws Exception {
    browser = PlaygroundBrowser.start(root);
    browser.open();
    String tenant = "play-retrain";
    browser.adminKey(PlaygroundBrowser.ADMIN);
    browser.createTenant(tenant, "Playground retrain");

    browser.type("ds-name", "json-style");
    browser.files("ds-file", Path.of("trainer/fixtures/datasets/initech.jsonl"));
    browser.click("ds-submit");
    String stored = browser.ok("adm-dataset-msg");
    assertTrue(stored.startsWith("data set json-style: "), stored);
    assertEquals(1, browser.driver().findElements(By.cssSelector("#adm-datasets li")).size());

    browser.type("rt-adapter", "style");
    browser.type("rt-steps", "5");
    browser.choose("rt-activate", "always");
    browser.type("rt-probe", PlaygroundBrowserTest.question("globex/0"));
    browser.click("rt-submit");
    assertEquals("retrain requested", browser.ok("adm-retrain-msg"));
    browser.await(d -> d.findElement(By.id("job")).isDisplayed());
    String jobId = browser.text("job-id");
    String requestId =
        given()
            .auth()
            .oauth2(PlaygroundBrowser.ADMIN)
            .get("/admin/jobs/" + jobId)
            .then()
            .statusCode(200)
            .extract()
            .path("requestId");

    AdapterEventsTest.sendStatus(requestId, "running", 50, 0.75, null);
    browser.await(d -> browser.text("job-state").equals("running"));
    browser.await(d -> "50".equals(browser.find("job-progress").getDomProperty("value")));
    assertEquals("0.7500", browser.text("job-loss"));
    assertEquals("3", browser.text("job-step"));

    ObjectNode adapter = AdapterEventsTest.event(tenant, "style", "globex");
    adapter.put("requestId", requestId);
    AdapterEventsTest.send(adapter);
    AdapterEventsTest.sendStatus(requestId, "succeeded", 100, 0.5, adapter.get("sha256").asText());
    String state =
        browser.await(
            d -> {
              String s = d.findElement(By.id("job")).getDomAttribute("data-state");
              return s.equals("answered") || s.equals("error") || s.equals("failed") ? s : null;
            });
    assertEquals("answered", state, () -> "the job panel says " + browser.text("job"));
    assertEquals("v1", browser.text("job-version"));
    assertEquals(Golden.textUntilEos("globex/0"), browser.text("job-answer"));
    assertTrue(
        browser.versionRows().stream().anyMatch(r -> r.startsWith("style v1 ")),
        browser.versionRows().toString());
    browser.screenshot("retrain");
  }
}
