package dev.prefixgate.api;

import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import org.eclipse.microprofile.config.inject.ConfigProperty;

@Path("/v1/version")
public class VersionResource {

  public record Version(String name, String version) {}

  // Quarkus fills this from the Maven project version at build time.
  @ConfigProperty(name = "quarkus.application.version")
  String version;

  @GET
  @Produces(MediaType.APPLICATION_JSON)
  public Version get() {
    return new Version("prefixgate", version);
  }
}
