package dev.prefixgate.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.prefixgate.PrefixgateConfig;
import dev.prefixgate.adapter.AdapterArchive;
import dev.prefixgate.adapter.AdapterRegistry;
import dev.prefixgate.adapter.AdapterVersion;
import dev.prefixgate.engine.AdapterFormatException;
import dev.prefixgate.engine.BaseModel;
import dev.prefixgate.retrain.Dataset;
import dev.prefixgate.retrain.Datasets;
import dev.prefixgate.retrain.RetrainRequests;
import dev.prefixgate.retrain.TrainingJob;
import dev.prefixgate.tenant.Tenant;
import dev.prefixgate.tenant.Tenants;
import jakarta.inject.Inject;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DELETE;
import jakarta.ws.rs.DefaultValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Instant;
import java.util.List;
import org.jboss.resteasy.reactive.RestForm;
import org.jboss.resteasy.reactive.multipart.FileUpload;

/** Admin API for a tenant's adapters, data sets and retraining (admin key required). */
@Path("/admin/tenants/{tenant}")
@Produces(MediaType.APPLICATION_JSON)
public class AdminAdaptersResource {
  /** Largest accepted adapter file or uncompressed archive content. */
  static final long MAX_ADAPTER_BYTES = 64L * 1024 * 1024;

  @Inject AdapterRegistry registry;
  @Inject Datasets datasets;
  @Inject Tenants tenants;
  @Inject BaseModel baseModel;
  @Inject RetrainRequests retrain;
  @Inject PrefixgateConfig config;

  /**
   * A retrain request. {@code activate}: gate (default: live only when its held-out loss beats the
   * base's by {@code minImprovement} and is at most {@code maxEvalLoss}), if-better (and beats the
   * active version), always, never.
   */
  public record Retrain(
      String adapter,
      String datasetId,
      JsonNode hyperParameters,
      String activate,
      Double minImprovement,
      Double maxEvalLoss) {}

  public record AdapterView(
      String name,
      int version,
      String digest,
      int numVirtualTokens,
      String status,
      String source,
      String producer,
      String baseModel,
      String baseFingerprint,
      JsonNode metrics,
      Instant createdAt) {
    static AdapterView of(AdapterVersion a) {
      return new AdapterView(
          a.name,
          a.version,
          a.digest,
          a.numVirtualTokens,
          a.status.name(),
          a.source,
          a.producer,
          a.baseModel,
          a.baseFingerprint,
          Json.tree(a.metrics),
          a.createdAt);
    }
  }

  public record DatasetView(String id, String name, String digest, int records, Instant createdAt) {
    static DatasetView of(Dataset d) {
      return new DatasetView(d.id, d.name, d.digest, d.records, d.createdAt);
    }
  }

  /**
   * Uploads the two files PEFT's {@code save_pretrained} writes ({@code adapter_config}, {@code
   * adapter_model}), or one {@code archive} (.zip / .tar.gz of that folder). 201 with the new
   * version; 200 with the existing one when the same bytes were uploaded before.
   */
  @POST
  @Path("/adapters/{name}")
  @Consumes(MediaType.MULTIPART_FORM_DATA)
  public Response upload(
      @PathParam("tenant") String tenant,
      @PathParam("name") String name,
      @RestForm("adapter_config") FileUpload config,
      @RestForm("adapter_model") FileUpload model,
      @RestForm("archive") FileUpload archive,
      @QueryParam("activate") @DefaultValue("true") boolean activate)
      throws AdapterFormatException {
    requireTenant(tenant);
    if (!Tenant.ID.matcher(name).matches() || name.equals("base")) {
      throw ApiError.invalid(
          "name",
          "adapter name must match "
              + Tenant.ID.pattern()
              + " and not be 'base', got '"
              + name
              + "'");
    }
    byte[] cfg;
    byte[] weights;
    if (archive != null) {
      if (config != null || model != null) {
        throw ApiError.invalid("archive", "send either an archive or the two files, not both");
      }
      AdapterArchive.Files files = AdapterArchive.read(read(archive, "archive"), MAX_ADAPTER_BYTES);
      cfg = files.adapterConfig();
      weights = files.safetensors();
    } else {
      if (config == null || model == null) {
        throw ApiError.invalid(
            config == null ? "adapter_config" : "adapter_model",
            "multipart fields 'adapter_config' and 'adapter_model' (or 'archive') are required");
      }
      cfg = read(config, "adapter_config");
      weights = read(model, "adapter_model");
    }
    AdapterRegistry.Registered r =
        registry.register(
            tenant,
            name,
            cfg,
            weights,
            baseModel,
            new AdapterRegistry.Origin("upload", "admin"),
            activate,
            null);
    return Response.status(r.created() ? 201 : 200).entity(AdapterView.of(r.adapter())).build();
  }

  @GET
  @Path("/adapters")
  public List<AdapterView> list(@PathParam("tenant") String tenant) {
    requireTenant(tenant);
    return registry.versions(tenant, null).stream().map(AdapterView::of).toList();
  }

  @GET
  @Path("/adapters/{name}")
  public List<AdapterView> versions(
      @PathParam("tenant") String tenant, @PathParam("name") String name) {
    requireTenant(tenant);
    List<AdapterView> out = registry.versions(tenant, name).stream().map(AdapterView::of).toList();
    if (out.isEmpty()) throw ApiError.notFound("adapter '" + name + "' of tenant '" + tenant + "'");
    return out;
  }

  /** Makes a version active (also a rollback); visible to the next request at once. */
  @POST
  @Path("/adapters/{name}/versions/{version}/activate")
  public AdapterView activate(
      @PathParam("tenant") String tenant,
      @PathParam("name") String name,
      @PathParam("version") int version) {
    requireTenant(tenant);
    return registry
        .activate(tenant, name, version)
        .map(AdapterView::of)
        .orElseThrow(() -> ApiError.notFound("version " + version + " of adapter '" + name + "'"));
  }

  @DELETE
  @Path("/adapters/{name}/versions/{version}")
  public Response retire(
      @PathParam("tenant") String tenant,
      @PathParam("name") String name,
      @PathParam("version") int version,
      @QueryParam("force") @DefaultValue("false") boolean force) {
    requireTenant(tenant);
    return switch (registry.retire(tenant, name, version, force)) {
      case RETIRED -> Response.noContent().build();
      case NOT_FOUND ->
          throw ApiError.notFound("version " + version + " of adapter '" + name + "'");
      case REFUSED_ACTIVE ->
          throw ApiError.conflict(
              "version "
                  + version
                  + " of '"
                  + name
                  + "' is the active version; activate another one first or retire with ?force=true");
    };
  }

  /** Uploads a JSONL data set (body); errors name the line. */
  @POST
  @Path("/datasets")
  @Consumes({
    "application/x-ndjson",
    "application/jsonl",
    MediaType.TEXT_PLAIN,
    MediaType.APPLICATION_OCTET_STREAM
  })
  public Response uploadDataset(
      @PathParam("tenant") String tenant, @QueryParam("name") String name, byte[] body) {
    requireTenant(tenant);
    try {
      Dataset d = datasets.store(tenant, name == null || name.isBlank() ? "dataset" : name, body);
      return Response.status(201).entity(DatasetView.of(d)).build();
    } catch (IllegalArgumentException e) {
      throw ApiError.invalid("dataset", e.getMessage());
    }
  }

  @GET
  @Path("/datasets")
  public List<DatasetView> listDatasets(@PathParam("tenant") String tenant) {
    requireTenant(tenant);
    return datasets.list(tenant).stream().map(DatasetView::of).toList();
  }

  @GET
  @Path("/datasets/{id}")
  @Produces("application/x-ndjson")
  @jakarta.transaction.Transactional // the body is loaded lazily
  public byte[] downloadDataset(@PathParam("tenant") String tenant, @PathParam("id") String id) {
    return datasets
        .find(tenant, id)
        .map(d -> d.content)
        .orElseThrow(() -> ApiError.notFound("dataset '" + id + "' of tenant '" + tenant + "'"));
  }

  /** 202 with the job; 503 when the broker does not take the request (nothing is recorded then). */
  @POST
  @Path("/retrain")
  @Consumes(MediaType.APPLICATION_JSON)
  public Response retrain(@PathParam("tenant") String tenant, Retrain req) {
    if (req == null || req.adapter() == null || !Tenant.ID.matcher(req.adapter()).matches()) {
      throw ApiError.invalid("adapter", "adapter must match " + Tenant.ID.pattern());
    }
    if (req.datasetId() == null) throw ApiError.invalid("datasetId", "datasetId is required");
    Dataset d =
        datasets
            .find(tenant, req.datasetId())
            .orElseThrow(
                () ->
                    ApiError.notFound(
                        "dataset '" + req.datasetId() + "' of tenant '" + tenant + "'"));
    RetrainRequests.Activation activation;
    try {
      activation =
          new RetrainRequests.Activation(req.activate(), req.minImprovement(), req.maxEvalLoss());
    } catch (IllegalArgumentException e) {
      // The message starts with the field it names ("activate 'x' is not one of ...").
      throw ApiError.invalid(e.getMessage().split(" ", 2)[0], e.getMessage());
    }
    String url = config.admin().publicUrl() + "/admin/tenants/" + tenant + "/datasets/" + d.id;
    try {
      TrainingJob job = retrain.submit(d, req.adapter(), req.hyperParameters(), activation, url);
      return Response.status(202).entity(AdminJobsResource.JobView.of(job)).build();
    } catch (RetrainRequests.Unavailable e) {
      throw new ApiError(503, "server_error", "broker_unavailable", null, e.getMessage());
    } catch (IllegalArgumentException e) {
      throw ApiError.invalid("hyperParameters", e.getMessage());
    }
  }

  private void requireTenant(String tenant) {
    if (tenants.find(tenant).isEmpty()) throw ApiError.notFound("tenant '" + tenant + "'");
  }

  private static byte[] read(FileUpload f, String field) {
    try {
      if (f.size() > MAX_ADAPTER_BYTES) {
        throw ApiError.invalid(
            field, field + " is " + f.size() + " bytes, over the limit of " + MAX_ADAPTER_BYTES);
      }
      return Files.readAllBytes(f.uploadedFile());
    } catch (IOException e) {
      throw ApiError.invalid(field, "cannot read " + field + ": " + e.getMessage());
    }
  }
}
