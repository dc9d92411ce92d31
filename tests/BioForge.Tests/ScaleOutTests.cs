using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BioForge.Tests;

/// <summary>
/// deploy/nginx/bioforge.conf as shipped (ports rewritten): two <c>bioforge serve</c> processes behind a real nginx on
/// loopback; one replica is killed while requests are in flight, and every request still gets its answer.
/// </summary>
public sealed class ScaleOutTests
{
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static Process Replica(int port, StringBuilder log)
    {
        var info = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "BioForge.Cli.dll"), "serve", "--models",
            Path.Combine(Repository.Root, "models", "smiles-llama-small"), "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--threads", "1", "--device", "cpu"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        var process = Process.Start(info)!;
        var ready = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine($"[{port}] {e.Data}");
            if (e.Data.StartsWith("serving on", StringComparison.Ordinal)) ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine($"[{port}!] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!ready.Task.Wait(TimeSpan.FromMinutes(2))) throw new InvalidOperationException($"replica on port {port} did not start:\n{log}");
        return process;
    }

    [Fact]
    public async Task KillingOneReplicaBehindNginxLosesNoRequest()
    {
        if (!File.Exists("/usr/sbin/nginx")) throw new InvalidOperationException("nginx is not installed (scripts/setup.sh installs it)");
        int a = FreePort(), b = FreePort(), front = FreePort();
        string directory = TestData.TempDirectory();
        string site = File.ReadAllText(Path.Combine(Repository.Root, "deploy", "nginx", "bioforge.conf"))
            .Replace("127.0.0.1:8001", $"127.0.0.1:{a}", StringComparison.Ordinal).Replace("127.0.0.1:8002", $"127.0.0.1:{b}", StringComparison.Ordinal)
            .Replace("listen 8000;", $"listen 127.0.0.1:{front};", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(directory, "bioforge.conf"), site);
        File.WriteAllText(Path.Combine(directory, "nginx.conf"), $$"""
            worker_processes 1;
            pid {{directory}}/nginx.pid;
            error_log {{directory}}/error.log warn;
            events { worker_connections 1024; }
            http {
                access_log off;
                client_body_temp_path {{directory}}/body;
                proxy_temp_path {{directory}}/proxy;
                include {{directory}}/bioforge.conf;
            }
            """);
        var log = new StringBuilder();
        using var first = Replica(a, log);
        using var second = Replica(b, log);
        using var nginx = Process.Start(new ProcessStartInfo("/usr/sbin/nginx", ["-p", directory, "-c", Path.Combine(directory, "nginx.conf"), "-e", Path.Combine(directory, "error.log"), "-g", "daemon off;"])
        { RedirectStandardOutput = true, RedirectStandardError = true })!;
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{front}"), Timeout = TimeSpan.FromMinutes(1) };
            for (int i = 0; i < 50 && !(await Ok(client, "/v1/health/ready")); i++) await Task.Delay(100);
            string[] smiles = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCN(CC1)c1ccccc1"];
            int sent = 0, answered = 0;
            var failures = new List<string>();
            async Task Client(int id)
            {
                for (int k = 0; k < 60; k++)
                {
                    Interlocked.Increment(ref sent);
                    using var content = new StringContent($$"""{"input":"{{smiles[(id + k) % smiles.Length]}}"}""", Encoding.UTF8, "application/json");
                    using var response = await client.PostAsync("/v1/embeddings", content);
                    if (response.StatusCode == HttpStatusCode.OK) Interlocked.Increment(ref answered);
                    else
                    {
                        string why = $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}";
                        lock (failures) failures.Add(why);
                    }
                }
            }
            var load = Enumerable.Range(0, 8).Select(Client).ToArray();
            while (Volatile.Read(ref sent) < 150) await Task.Delay(5);
            using var direct = new HttpClient();
            Assert.Contains("bioforge_requests_total{route=\"/v1/embeddings\",status=\"200\"}", await direct.GetStringAsync($"http://127.0.0.1:{a}/v1/metrics")); // both replicas serve
            first.Kill(entireProcessTree: true); // mid-run, requests in flight on it
            await Task.WhenAll(load);
            Assert.True(failures.Count == 0, $"{failures.Count} of {sent} requests failed: {string.Join("; ", failures.Take(3))}\n{File.ReadAllText(Path.Combine(directory, "error.log"))}");
            Assert.Equal(480, answered);
            // The survivor now serves everything, and the service stays ready.
            Assert.True(await Ok(client, "/v1/health/ready"));
            string metrics = await direct.GetStringAsync($"http://127.0.0.1:{b}/v1/metrics");
            Assert.Contains("bioforge_requests_total{route=\"/v1/embeddings\",status=\"200\"}", metrics);
        }
        finally
        {
            if (!nginx.HasExited) nginx.Kill(entireProcessTree: true); // the master and its workers
            if (!first.HasExited) first.Kill(entireProcessTree: true);
            if (!second.HasExited) second.Kill(entireProcessTree: true);
        }
    }

    private static async Task<bool> Ok(HttpClient client, string path)
    {
        try
        {
            using var response = await client.GetAsync(path);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }
}
