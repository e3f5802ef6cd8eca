package dev.prefixgate.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.openqa.selenium.By;
import org.openqa.selenium.Dimension;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.ExpectedConditions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * The playground page (src/main/resources/META-INF/resources) in the system's headless Chromium,
 * driven by the system's chromedriver: Selenium Manager is never asked for (or to download) a
 * driver or a browser. Element ids are the page's own; waits are explicit conditions on the page's
 * {@code data-state} attributes and messages, never sleeps.
 */
public final class PlaygroundBrowser implements AutoCloseable {
  /** Debian's packages; {@code deploy/local/browser-env} installs them. */
  static final Path CHROMIUM =
      Path.of(System.getProperty("prefixgate.chromium", "/usr/bin/chromium"));

  static final Path CHROMEDRIVER =
      Path.of(System.getProperty("prefixgate.chromedriver", "/usr/bin/chromedriver"));

  /** Where {@link #screenshot} writes; docs/playground.md says which ones go to docs/img. */
  public static final Path SHOTS = Path.of("target/playground-screenshots");

  public static final String ADMIN = AdminApiTest.ADMIN;
  static final Duration WAIT = Duration.ofSeconds(60);

  private final ChromeDriver driver;
  private final URL root;

  private PlaygroundBrowser(ChromeDriver driver, URL root) {
    this.driver = driver;
    this.root = root;
  }

  /**
   * Starts Chromium. A missing browser or driver fails the test (it does not skip): the test
   * command installs both first.
   */
  public static PlaygroundBrowser start(URL root) {
    for (Path p : List.of(CHROMIUM, CHROMEDRIVER)) {
      if (!Files.isExecutable(p)) {
        fail(
            p
                + " is missing: the playground's browser tests need Debian's chromium and"
                + " chromium-driver packages; run deploy/local/browser-env (as root) or"
                + " apt-get install chromium chromium-driver");
      }
    }
    // Both paths given: Selenium Manager is not consulted, and nothing is downloaded.
    System.setProperty("webdriver.chrome.driver", CHROMEDRIVER.toString());
    ChromeDriverService service =
        new ChromeDriverService.Builder()
            .usingDriverExecutable(CHROMEDRIVER.toFile())
            .usingAnyFreePort()
            .build();
    ChromeOptions options = new ChromeOptions();
    options.setBinary(CHROMIUM.toFile());
    options.addArguments(
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--password-store=basic");
    return new PlaygroundBrowser(new ChromeDriver(service, options), root);
  }

  /** A fresh page: the keys and the conversation of the previous one are gone. */
  public void open() {
    driver.manage().window().setSize(new Dimension(1280, 900));
    driver.get(root.toString());
    await(d -> "true".equals(d.findElement(By.tagName("body")).getDomAttribute("data-ready")));
  }

  public ChromeDriver driver() {
    return driver;
  }

  public WebElement find(String id) {
    return driver.findElement(By.id(id));
  }

  /** The exact text of an element (Selenium's getText trims and collapses white space). */
  public String text(String id) {
    return find(id).getDomProperty("textContent");
  }

  public void type(String id, String value) {
    WebElement e = find(id);
    e.clear();
    e.sendKeys(value);
  }

  public void choose(String id, String value) {
    new Select(find(id)).selectByValue(value);
  }

  public void click(String id) {
    await(ExpectedConditions.elementToBeClickable(By.id(id))).click();
  }

  public void tab(String view) {
    click("tab-" + view);
    await(d -> d.findElement(By.id("view-" + view)).isDisplayed());
  }

  public <T> T await(java.util.function.Function<? super org.openqa.selenium.WebDriver, T> until) {
    return new WebDriverWait(driver, WAIT).until(until);
  }

  /** Waits until a message element says something with the class ok or error; returns it. */
  public WebElement settled(String id) {
    return await(
        d -> {
          WebElement m = d.findElement(By.id(id));
          String cls = m.getDomAttribute("class");
          return cls != null && (cls.contains(" ok") || cls.contains(" error")) ? m : null;
        });
  }

  /** The message of an element that must have settled as a success. */
  public String ok(String id) {
    WebElement m = settled(id);
    assertEquals("msg ok", m.getDomAttribute("class"), () -> id + " is an error: " + m.getText());
    return m.getDomProperty("textContent");
  }

  /** The message of an element that must have settled as an error. */
  public String error(String id) {
    WebElement m = settled(id);
    assertEquals(
        "msg error", m.getDomAttribute("class"), () -> id + " is not an error: " + m.getText());
    return m.getDomProperty("textContent");
  }

  public void tenantKey(String key) {
    type("tenant-key", key);
    click("load-models");
    ok("models-msg");
  }

  public void adminKey(String key) {
    tab("admin");
    type("admin-key", key);
    click("adm-connect");
    ok("adm-connect-msg");
  }

  /**
   * Creates a tenant in the admin view and makes the playground use its new key (shown once);
   * returns the key.
   */
  public String createTenant(String id, String name) {
    tab("admin");
    WebElement details = find("adm-create");
    if (details.getDomAttribute("open") == null) details.findElement(By.tagName("summary")).click();
    type("adm-new-id", id);
    type("adm-new-name", name);
    click("adm-create-btn");
    assertEquals("tenant " + id + " created", ok("adm-create-msg"));
    await(d -> d.findElement(By.id("adm-newkey")).isDisplayed());
    String key = text("adm-newkey-value");
    click("adm-use-key");
    assertEquals("0 models", ok("models-msg"));
    return key;
  }

  /** The admin view's tenant, with its versions loaded. */
  public void adminTenant(String tenant) {
    choose("adm-tenant", tenant);
    await(
        d ->
            tenant.equals(
                new Select(d.findElement(By.id("adm-tenant")))
                    .getFirstSelectedOption()
                    .getDomAttribute("value")));
    await(d -> !text("adm-tenant-info").isEmpty());
  }

  /** Sends one chat message in a new conversation and returns the streamed answer. */
  public String chat(String model, String prompt, int maxTokens) {
    tab("chat");
    click("chat-clear");
    String adapter = model.contains("@") ? model.substring(0, model.indexOf('@')) : model;
    choose("chat-model", adapter);
    choose("chat-version", model);
    type("chat-temperature", "0");
    type("chat-max-tokens", String.valueOf(maxTokens));
    type("chat-prompt", prompt);
    click("chat-send");
    String state =
        await(
            d -> {
              String s = d.findElement(By.id("chat-stats")).getDomAttribute("data-state");
              return s.equals("done") || s.equals("error") ? s : null;
            });
    assertEquals("done", state, () -> "the chat failed: " + text("chat-msg"));
    List<WebElement> answers =
        driver.findElements(By.cssSelector("#chat-log .msg-assistant .text"));
    return answers.get(answers.size() - 1).getDomProperty("textContent");
  }

  /** The version rows of the admin table, as "name vN STATUS". */
  public List<String> versionRows() {
    return driver.findElements(By.cssSelector("#adm-versions tbody tr")).stream()
        .map(
            r ->
                r.getDomAttribute("data-adapter")
                    + " v"
                    + r.getDomAttribute("data-version")
                    + " "
                    + r.getDomAttribute("data-status"))
        .collect(Collectors.toList());
  }

  /** Clicks the activate (or roll back) button of one version and waits for the table to say so. */
  public void activate(String adapter, int version) {
    By button =
        By.cssSelector(
            "#adm-versions tr[data-adapter='"
                + adapter
                + "'][data-version='"
                + version
                + "'] button.activate");
    await(ExpectedConditions.elementToBeClickable(button)).click();
    ok("adm-versions-msg");
    await(d -> versionRows().contains(adapter + " v" + version + " ACTIVE"));
  }

  /** Selects files on a file input (several: one path per line, as chromedriver takes them). */
  public void files(String id, Path... paths) {
    WebElement input = find(id);
    // chromedriver adds to a multiple input's selection: start from none.
    driver.executeScript("arguments[0].value = ''", input);
    input.sendKeys(
        Arrays.stream(paths)
            .map(p -> p.toAbsolutePath().toString())
            .collect(Collectors.joining("\n")));
  }

  /** Saves a PNG of the whole page (beyond the window, through the DevTools protocol). */
  public void screenshot(String name) {
    Map<String, Object> metrics = driver.executeCdpCommand("Page.getLayoutMetrics", Map.of());
    Map<?, ?> size = (Map<?, ?>) metrics.get("cssContentSize");
    Map<String, Object> clip =
        Map.of(
            "x", 0,
            "y", 0,
            "width", ((Number) size.get("width")).doubleValue(),
            "height", ((Number) size.get("height")).doubleValue(),
            "scale", 1);
    Map<String, Object> shot =
        driver.executeCdpCommand(
            "Page.captureScreenshot",
            Map.of("format", "png", "captureBeyondViewport", true, "clip", clip));
    try {
      Files.createDirectories(SHOTS);
      Files.write(
          SHOTS.resolve(name + ".png"), Base64.getDecoder().decode((String) shot.get("data")));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void close() {
    driver.quit();
  }
}
