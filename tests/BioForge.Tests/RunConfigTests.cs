using BioForge.IO;
using BioForge.Training;

namespace BioForge.Tests;

public sealed class RunConfigTests
{
    private static RunConfig Load(string yaml, params string[] overrides) => TinyRuns.Config(yaml, overrides);

    private const string Minimal = """
        data:
          dir: corpus
        model:
          type: llama
        train:
          steps: 100
          output_dir: runs/x
        """;

    [Fact]
    public void ReadsSectionsWithDefaultsAndAppliesOverrides()
    {
        var config = Load(Minimal, "optimizer.lr=0.002", "train.precision=bf16-mixed", "model.config.hidden_size=64", "data.packing=true");
        Assert.Equal(0.002, config.Optimizer.Lr);
        Assert.Equal("bf16-mixed", config.Train.Precision);
        Assert.Equal(64, config.Model.Config!["hidden_size"]!.GetValue<long>());
        Assert.True(config.Data.Packing);
        Assert.Equal(16384, config.Data.TokensPerBatch);
        Assert.Equal(0.98, config.Optimizer.Beta2);

        // Values as a run file reads them: quotes are YAML's, not the path's, and blanks around a plain value go.
        Assert.Equal("/tmp/a b", Load(Minimal, "train.output_dir=\"/tmp/a b\"").Train.OutputDir);
        Assert.Equal("it's", Load(Minimal, "train.output_dir='it''s'").Train.OutputDir);
        Assert.Equal("out", Load(Minimal, "train.output_dir= out ").Train.OutputDir);
        Assert.Contains("train.output_dir=\"/tmp/x\"y", Assert.Throws<BioForgeException>(() => Load(Minimal, "train.output_dir=\"/tmp/x\"y")).Message);
    }

    [Theory]
    [InlineData("train.stepz=5", "override 'train.stepz=5': unknown key 'train.stepz'")]
    [InlineData("optimiser.lr=1", "override 'optimiser.lr=1': unknown key 'optimiser'")]
    [InlineData("train.steps=many", "override 'train.steps=many': train.steps = \"many\": the wrong type or out of range (expected a whole number)")]
    [InlineData("optimizer.lr=nan", "override 'optimizer.lr=nan': optimizer.lr = \"nan\": the wrong type or out of range (expected a finite number)")]
    [InlineData("train.steps=0", "override 'train.steps=0': train.steps must be positive")]
    [InlineData("train.output_dir=", "override 'train.output_dir=': train.output_dir is required")] // was a NullReferenceException
    [InlineData("data.dir= ", "override 'data.dir= ': data.dir is required")]
    [InlineData("train.threads=-3", "train.threads must be 0 (all cores) or positive (got -3)")]
    [InlineData("train.precision=fp8", "train.precision")]
    [InlineData("schedule.decay=exponential", "schedule.decay must be constant, linear or cosine (got 'exponential')")]
    [InlineData("model.type=gpt", "model.type")]
    [InlineData("optimizer.lr=-1", "optimizer.lr")]
    [InlineData("checkpoint.keep=0", "checkpoint.keep")]
    [InlineData("train=5", "'train' must be a section")]
    [InlineData("nonsense", "expected section.key=value")]
    [InlineData("--output-dir", "--output-dir: not an option of this command; run-file settings are given as section.key=value (train.output_dir=…)")]
    [InlineData("--bogus", "--bogus: not an option of this command; run-file settings are given as section.key=value")]
    [InlineData("--threads", "(train.threads=…)")] // a setting the file leaves out is found too
    [InlineData("--every", "(validation.every=… or checkpoint.every=…)")]
    public void RefusesBadSettingsNamingTheKey(string assignment, string expected)
    {
        var error = Assert.Throws<BioForgeException>(() => Load(Minimal, assignment));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void ReportsYamlSyntaxErrorsWithTheirLine()
    {
        var error = Assert.Throws<BioForgeException>(() => Load("data:\n  dir: x\n  bad: [unclosed\n"));
        Assert.Matches(@"run\.yaml:\d+:\d+:", error.Message);
        Assert.Matches(@"run\.yaml:\d+:1: Duplicate key data", Assert.Throws<BioForgeException>(() => Load(Minimal + "\ndata:\n  dir: y\n")).Message);
        // Aliases of aliases expand to 10⁹ values in a few lines: refused at a bound, not read until memory runs out.
        const string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            + "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
        Assert.Contains("more than 100,000 values once its aliases are expanded", Assert.Throws<BioForgeException>(() => Load(laughs)).Message);
        Assert.Contains("override 'seed=2': seed is set twice (also override 'seed=1')", Assert.Throws<BioForgeException>(() => Load(Minimal, "seed=1", "seed=2")).Message);
        Assert.Matches(@"run\.yaml:3:1: .*tab", Assert.Throws<BioForgeException>(() => Load("seed: 1\ndata:\n\tdir: x\n")).Message); // the tab's line, not the mapping's
        Assert.Matches(@"run\.yaml:\d+: a second YAML document", Assert.Throws<BioForgeException>(() => Load(Minimal + "\n---\nseed: 7\n")).Message);
        Assert.Contains("not found", Assert.Throws<BioForgeException>(() => RunConfig.Load("/nonexistent/run.yaml")).Message);
        // A mistake in the file is the file's, with the value shown.
        Assert.EndsWith("run.yaml: train.steps = \"ten\": the wrong type or out of range (expected a whole number)",
            Assert.Throws<BioForgeException>(() => Load(Minimal.Replace("steps: 100", "steps: ten"))).Message);
    }

    [Fact]
    public void UnknownNetworkKeysAreRefusedBeforeTraining()
    {
        var config = Load(TinyRuns.LlamaYaml(TinyRuns.Smiles, TestData.TempDirectory(), 2), "model.config.hidden_sise=8");
        var error = Assert.Throws<BioForgeException>(() => Trainer.Run(config, new TrainerOptions()));
        Assert.Contains("hidden_sise", error.Message);
    }

    [Fact]
    public void ShippedConfigurationsAreValid()
    {
        string directory = Path.Combine(AppContext.BaseDirectory, "configs");
        var files = Directory.GetFiles(directory, "*.yaml");
        Assert.True(files.Length >= 6, $"expected the shipped configurations in {directory}");
        foreach (string file in files)
        {
            if (Path.GetFileName(file).StartsWith("finetune-", StringComparison.Ordinal))
            {
                var finetune = BioForge.FineTuning.FineTuneConfig.Load(file);
                Assert.True(finetune.Train.Epochs > 0, file);
                continue;
            }
            if (Path.GetFileName(file).StartsWith("dti-", StringComparison.Ordinal))
            {
                var affinity = BioForge.Discovery.DtiConfig.Load(file);
                Assert.True(affinity.Train.Epochs > 0, file);
                continue;
            }
            var config = RunConfig.Load(file);
            Assert.True(config.Train.Steps > 0, file);
        }
        var runFiles = Directory.GetFiles(directory, "*.toml");
        Assert.NotEmpty(runFiles);
        foreach (string file in runFiles)
            Assert.NotEmpty(BioForge.Discovery.OptimizeConfig.Load(file).Stages);
    }
}

public sealed class LearningRateScheduleTests
{
    [Fact]
    public void WarmsUpLinearlyThenDecaysToTheFloor()
    {
        var cosine = new LearningRateSchedule(1e-3, 10, 110, LearningRateDecay.Cosine, 0.1);
        Assert.Equal(1e-4, cosine.At(1), 12);
        Assert.Equal(1e-3, cosine.At(10), 12);
        Assert.Equal(0.55e-3, cosine.At(60), 12); // half way: (1 + cos(π/2)) / 2 = 0.5 of the span above the floor
        Assert.Equal(1e-4, cosine.At(110), 12);
        Assert.Equal(1e-4, cosine.At(500), 12);

        var linear = new LearningRateSchedule(1e-3, 0, 100, LearningRateDecay.Linear, 0);
        Assert.Equal(1e-3, linear.At(0), 12);
        Assert.Equal(0.5e-3, linear.At(50), 12);
        Assert.Equal(0, linear.At(100), 12);

        var constant = new LearningRateSchedule(2e-4, 5, 100, LearningRateDecay.Constant);
        Assert.Equal(2e-4, constant.At(99), 12);
    }

    [Fact]
    public void FineTuningsLastUpdateIsNotWasted()
    {
        // Decay to 0 at the last step would make that update a no-op; it ends one step past it, as Hugging Face's does.
        var config = new BioForge.FineTuning.FineTuneConfig { Optimizer = new() { Lr = 1e-3, WarmupFraction = 0.1, Decay = "linear" } };
        var schedule = config.Schedule(100);
        Assert.Equal(1e-4, schedule.At(1), 12);
        Assert.Equal(1e-3, schedule.At(10), 12);
        Assert.Equal(1e-3 / 91, schedule.At(100), 12);
        Assert.True(config.Schedule(1).At(1) > 0);
    }
}

public sealed class TrainingStreamTests
{
    private static TokenStore.Reader Store(string directory, params int[][] documents)
    {
        string prefix = Path.Combine(directory, "train");
        using (var writer = new TokenStore.Writer(prefix, 100))
        {
            foreach (var d in documents) writer.Add(d);
            writer.Complete();
        }
        return new TokenStore.Reader(prefix);
    }

    [Fact]
    public void PackedRowsTileTheShuffledCorpusWithoutGapsOrPadding()
    {
        var documents = Enumerable.Range(0, 37).Select(d => Enumerable.Range(0, 3 + d % 7).Select(i => d + 1).ToArray()).ToArray();
        using var store = Store(TestData.TempDirectory(), documents);
        var stream = new TrainingStream(store, maxLength: 8, tokensPerBatch: 32, packing: true, randomCrop: false, seed: 9);
        var rows = new List<int[]>();
        for (int k = 0; stream.Read(0, k) is { } batch; k++)
        {
            Assert.True(batch.Count <= 4);
            rows.AddRange(batch.Select(s => s.Tokens));
        }
        Assert.All(rows, r => Assert.Equal(9, r.Length));
        var order = TokenBudgetBatches.Permutation(documents.Length, 9, 0, stream: 0);
        var concatenated = order.SelectMany(d => documents[d]).ToArray();
        for (int r = 0; r < rows.Count; r++)
            Assert.Equal(concatenated.Skip(r * 8).Take(9), rows[r]);
        Assert.Equal((concatenated.Length - 1) / 8, rows.Count);
    }

    [Fact]
    public void LongDocumentsAreCroppedAndEpochsFollowEachOther()
    {
        var documents = new[] { Enumerable.Range(1, 50).ToArray(), new[] { 1, 2, 3 }, Enumerable.Range(1, 20).ToArray() };
        using var store = Store(TestData.TempDirectory(), documents);
        var causal = new TrainingStream(store, maxLength: 10, tokensPerBatch: 10, packing: false, randomCrop: false, seed: 1);
        var masked = new TrainingStream(store, maxLength: 10, tokensPerBatch: 10, packing: false, randomCrop: true, seed: 1);
        var position = new StreamPosition(0, 0);
        var seen = new List<TokenSequence>();
        for (int i = 0; i < 3; i++)
        {
            (var batch, position) = causal.Next(position);
            seen.AddRange(batch);
        }
        Assert.Equal(new StreamPosition(0, 3), position);
        Assert.Equal(Enumerable.Range(1, 10), seen.Single(s => s.Id == 0).Tokens);
        (_, position) = causal.Next(position);
        Assert.Equal(new StreamPosition(1, 1), position);

        var crops = Enumerable.Range(0, 20).Select(epoch => masked.Read(epoch, 0)!.Concat(masked.Read(epoch, 1)!).Concat(masked.Read(epoch, 2)!)
            .Single(s => s.Id == 0).Tokens).ToList();
        // A masked-LM crop is a window of residues framed again by the document's first and last tokens (<cls>, <eos>).
        Assert.All(crops, c =>
        {
            Assert.Equal(1, c[0]);
            Assert.Equal(50, c[^1]);
            Assert.Equal(Enumerable.Range(c[1], 8), c[1..^1]);
            Assert.InRange(c[1], 2, 42);
        });
        Assert.True(crops.Select(c => c[1]).Distinct().Count() > 5, "random crops should start at varied positions");
        var validation = TrainingStream.Validation(store, maxLength: 10, tokensPerBatch: 10, seed: 1, framed: true).SelectMany(b => b).Single(s => s.Id == 0);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 50], validation.Tokens);
        Assert.Equal(Enumerable.Range(1, 10), TrainingStream.Validation(store, 10, 10, 1, framed: false).SelectMany(b => b).Single(s => s.Id == 0).Tokens);
    }
}

public sealed class ClusterSamplingTests
{
    /// <summary>
    /// Copies of a protein fall on one side of the split: a lower-case copy (the tokenizer reads it as the same
    /// protein), and copies under other ids that a partial cluster file (read gzipped too) does not list, whether it
    /// lists the sequence they copy (half of them here) or not.
    /// </summary>
    [Fact]
    public void CopiesOfAProteinFallOnOneSideWhateverTheirCaseOrIds()
    {
        string directory = TestData.TempDirectory();
        var random = new Random(4);
        var sequences = Enumerable.Range(0, 120).Select(_ => new string([.. Enumerable.Range(0, 30).Select(_ => "ACDEFGHIKLMNPQRSTVWY"[random.Next(20)])])).ToList();
        string fasta = Path.Combine(directory, "copies.fasta");
        File.WriteAllText(fasta, string.Concat(sequences.Select((q, i) => $">u{i}\n{q}\n>l{i}\n{q.ToLowerInvariant()}\n>d{i}\n{q}\n")));
        string tsv = Path.Combine(directory, "clusters.tsv.gz");
        using (var gzip = new System.IO.Compression.GZipStream(File.Create(tsv), System.IO.Compression.CompressionLevel.Fastest))
        using (var writer = new StreamWriter(gzip))
            writer.Write(string.Concat(Enumerable.Range(0, 60).Select(i => $"u{i}\tu{i}\n")));
        foreach (string? clusters in new[] { null, tsv })
        {
            string corpus = Path.Combine(directory, clusters is null ? "plain" : "clustered");
            var prepared = DataPreparation.Prepare([fasta], CorpusKind.Protein, corpus, validationFraction: 0.3, seed: 1, clusterFile: clusters);
            Assert.True(prepared.Validation.Documents > 0);
            using var train = new TokenStore.Reader(Path.Combine(corpus, "train"));
            using var valid = new TokenStore.Reader(Path.Combine(corpus, "valid"));
            var trained = Enumerable.Range(0, train.Count).Select(d => string.Join(',', train.Document(d))).ToHashSet();
            Assert.DoesNotContain(Enumerable.Range(0, valid.Count), d => trained.Contains(string.Join(',', valid.Document(d))));
        }

        // An alignment is not a corpus of sequences: ESM-2's alphabet would take its gaps as tokens.
        string aligned = Path.Combine(directory, "aligned.fasta");
        File.WriteAllText(aligned, ">a\nMKT-LV\n>b\nMKTALV\n");
        string refused = Path.Combine(directory, "refused");
        Assert.Contains($"{aligned}:1: record 'a' holds an alignment gap ('-' at position 4)", Assert.Throws<BioForgeException>(() =>
            DataPreparation.Prepare([aligned], CorpusKind.Protein, refused, validationFraction: 0.3, seed: 1)).Message);
        Assert.False(Directory.Exists(refused));
    }

    [Fact]
    public void EachEpochDrawsOneMemberPerClusterAndSplitsKeepClustersWhole()
    {
        string directory = TestData.TempDirectory();
        string fasta = Path.Combine(directory, "seqs.fasta");
        var ids = new[] { "a1", "a2", "a3", "b1", "b2", "c1" }.Concat(Enumerable.Range(0, 40).Select(i => $"s{i}")).ToArray();
        File.WriteAllText(fasta, string.Concat(ids.Select((id, i) => $">{id} protein {i}\nMKT{new string('A', 5 + i % 7)}LV\n")));
        string tsv = Path.Combine(directory, "clusters.tsv");
        File.WriteAllText(tsv, "a1\ta1\na1\ta2\na1\ta3\nb1\tb1\nb1\tb2\n");
        string corpus = Path.Combine(directory, "corpus");
        var prepared = DataPreparation.Prepare([fasta], CorpusKind.Protein, corpus, validationFraction: 0.3, seed: 2, clusterFile: tsv);
        Assert.Equal(ids.Length, prepared.Train.Documents + prepared.Validation.Documents);
        Assert.Equal(5, prepared.Clustered);
        // A cluster file of other ids, or of more columns than MMseqs2 writes, is refused (it sampled as if there were none).
        string other = Path.Combine(directory, "other.tsv");
        File.WriteAllText(other, "x1\tx1\nx1\tx2\n");
        Assert.Contains("none of the 46 sequences is listed", Assert.Throws<BioForgeException>(() =>
            DataPreparation.Prepare([fasta], CorpusKind.Protein, Path.Combine(directory, "c2"), 0.3, 2, clusterFile: other)).Message);
        File.WriteAllText(other, "a1\ta1\t0.9\n");
        Assert.Contains($"{other}:1: expected 'representative<TAB>member' (MMseqs2 createtsv), got 3 field(s)", Assert.Throws<BioForgeException>(() =>
            DataPreparation.Prepare([fasta], CorpusKind.Protein, Path.Combine(directory, "c3"), 0.3, 2, clusterFile: other)).Message);

        using var store = new TokenStore.Reader(Path.Combine(corpus, "train"));
        var members = Clusters.ReadMembers(Path.Combine(corpus, "train"), store.Count);
        Assert.Equal(store.Count, members.Sum(m => m.Length));
        // The a- and b-clusters went to one split each, whole: their sizes are 3 and 2 or absent.
        Assert.All(members, m => Assert.Contains(m.Length, new[] { 1, 2, 3 }));
        Assert.Equal(prepared.Train.Documents - members.Count(m => m.Length == 1), members.Where(m => m.Length > 1).Sum(m => m.Length));

        var stream = new TrainingStream(store, maxLength: 64, tokensPerBatch: 256, packing: false, randomCrop: false, seed: 1, members);
        var seen = new HashSet<long>();
        for (int epoch = 0; epoch < 30; epoch++)
        {
            var docs = new List<long>();
            for (int k = 0; stream.Read(epoch, k) is { } batch; k++) docs.AddRange(batch.Select(s => s.Id));
            Assert.Equal(members.Length, docs.Count);
            Assert.All(members, m => Assert.Single(docs, d => m.Contains((int)d)));
            seen.UnionWith(docs);
        }
        Assert.Equal(store.Count, seen.Count); // over many epochs every member is drawn

        File.WriteAllText(tsv, "a1\ta2\nb1\ta2\n");
        Assert.Contains("already a member", Assert.Throws<BioForgeException>(() =>
            DataPreparation.Prepare([fasta], CorpusKind.Protein, Path.Combine(directory, "bad"), 0.1, 0, clusterFile: tsv)).Message);
    }
}
