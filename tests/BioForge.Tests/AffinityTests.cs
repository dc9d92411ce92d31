using System.Globalization;
using BioForge.Chem;
using BioForge.Discovery;
using BioForge.IO;
using BioForge.Statistics;

namespace BioForge.Tests;

/// <summary>The affinity benchmark reader, the metrics papers report, and a short training run end to end.</summary>
[Collection(nameof(TrainerTests))] // seeds LibTorch's global generator: its seeded runs must not interleave with other trainings
public sealed class AffinityTests
{
    private static string Davis => Path.Combine(AppContext.BaseDirectory, "data", "davis");

    /// <summary>The definition, pair by pair: the O(n log n) version must agree with it.</summary>
    private static double ConcordanceByPairs(double[] truth, double[] predicted)
    {
        double concordant = 0;
        long pairs = 0;
        for (int i = 0; i < truth.Length; i++)
            for (int j = 0; j < truth.Length; j++)
            {
                if (truth[i] <= truth[j]) continue;
                pairs++;
                concordant += predicted[i] > predicted[j] ? 1 : predicted[i] == predicted[j] ? 0.5 : 0;
            }
        return concordant / pairs;
    }

    [Fact]
    public void TheConcordanceIndexCountsOrderedPairsWithTiesAsHalf()
    {
        Assert.Equal(2.0 / 3, AffinityMetrics.ConcordanceIndex([1, 2, 3], [1, 3, 2]), 12);
        Assert.Equal(1.0, AffinityMetrics.ConcordanceIndex([1, 2, 3], [10, 20, 30]), 12);
        Assert.Equal(0.5, AffinityMetrics.ConcordanceIndex([1, 2, 3], [7, 7, 7]), 12);
        // Davis-like data: many equal truths (5.0 = no binding) and tied predictions, against the pairwise definition.
        var random = new Random(7);
        var truth = Enumerable.Range(0, 600).Select(_ => random.NextDouble() < 0.6 ? 5.0 : Math.Round(5 + 5 * random.NextDouble(), 1)).ToArray();
        var predicted = truth.Select(t => Math.Round(t + random.NextDouble() - 0.5, 1)).ToArray();
        Assert.Equal(ConcordanceByPairs(truth, predicted), AffinityMetrics.ConcordanceIndex(truth, predicted), 12);
    }

    [Fact]
    public void ANaNOnEitherSideMakesTheRankMetricsNaNAndDoesNotHang()
    {
        // Equal-truth groups were found with ==, which a NaN never meets: the concordance index looped forever.
        Assert.True(double.IsNaN(AffinityMetrics.ConcordanceIndex([double.NaN, 1, 2], [1, 2, 3])));
        Assert.True(double.IsNaN(AffinityMetrics.ConcordanceIndex([1, 2, 3], [double.NaN, 1, 2])));
        // Ranked, NaNs sorted first and this came out a perfect 1.
        Assert.True(double.IsNaN(Correlation.Spearman([1, 2, 3, 4], [double.NaN, double.NaN, 1, 2])));
        Assert.True(double.IsNaN(AffinityMetrics.All([1, 2, 3], [1, double.NaN, 3], 2)["spearman"]));
    }

    [Fact]
    public void Rm2AndMseAreComputedAsDeepDtaComputesThem()
    {
        double[] truth = [5.0, 5.0, 6.2, 7.1, 8.3, 5.0, 9.0], predicted = [5.1, 5.3, 6.0, 7.5, 7.9, 5.2, 8.1];
        // Reference: DeepDTA's emetrics.get_rm2 formula evaluated with python3 on these numbers.
        Assert.Equal(0.7458110840852792, AffinityMetrics.Rm2(truth, predicted), 10);
        Assert.Equal(truth.Zip(predicted).Average(p => (p.First - p.Second) * (p.First - p.Second)), AffinityMetrics.MeanSquaredError(truth, predicted), 12);
    }

    [Fact]
    public void BinderAuprRanksPairsAtOrAboveTheThresholdByPrediction()
    {
        // Binders: 7.0 (the threshold itself counts) and 8.0; ranked 8.0 (found), 7.2, 6.5, 6.0 (found): (1 + 2/4) / 2.
        double[] truth = [5.0, 7.0, 6.9, 8.0], predicted = [6.5, 6.0, 7.2, 8.0];
        Assert.Equal(0.75, AffinityMetrics.BinderAupr(truth, predicted, 7.0), 12);
        Assert.Equal(0.75, AffinityMetrics.All(truth, predicted, 7.0)["aupr"], 12);
        Assert.Equal(1.0, AffinityMetrics.BinderAupr(truth, predicted, 7.5), 12);
        Assert.True(double.IsNaN(AffinityMetrics.BinderAupr(truth, predicted, 12.1)), "no binder: nothing to find");
        Assert.True(double.IsNaN(AffinityMetrics.BinderAupr([double.NaN, 8.0], [1.0, 2.0], 7.0)));
        Assert.Equal(7.0, AffinityModel.BinderThreshold("pKd"));
        Assert.Equal(12.1, AffinityModel.BinderThreshold("KIBA score"));
    }

    [Fact]
    public void DavisLoadsWithItsPublishedShapeAndPkdRange()
    {
        var davis = AffinityDataset.Load(Davis);
        Assert.Equal(68, davis.Drugs.Count);
        Assert.Equal(442, davis.Targets.Count);
        Assert.Equal(30_056, davis.Pairs.Count);
        Assert.Equal(5_010, davis.TestFold.Length);
        Assert.Equal(5, davis.TrainFolds.Length);
        Assert.Equal("pKd", davis.Measure);
        // 10,000 nM (no binding detected) is pKd 5; the strongest pair is about 10.8.
        Assert.Equal(5.0, davis.Pairs.Min(p => p.Affinity), 9);
        Assert.InRange(davis.Pairs.Max(p => p.Affinity), 10.7, 10.9);
        Assert.Equal(30_056, davis.TestFold.Concat(davis.TrainFolds.SelectMany(f => f)).Distinct().Count());
        Assert.StartsWith("AAK1", davis.Targets[0].Id, StringComparison.Ordinal);

        // A lower-case proteins.txt is read as screening reads a target (the features count upper-case residues only).
        string lower = TestData.TempDirectory();
        foreach (string file in Directory.GetFiles(Davis)) File.Copy(file, Path.Combine(lower, Path.GetFileName(file)));
        Directory.CreateDirectory(Path.Combine(lower, "folds"));
        foreach (string file in Directory.GetFiles(Path.Combine(Davis, "folds"))) File.Copy(file, Path.Combine(lower, "folds", Path.GetFileName(file)));
        var proteins = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Davis, "proteins.txt")))!.AsObject();
        foreach (var key in proteins.Select(p => p.Key).ToList()) proteins[key] = proteins[key]!.GetValue<string>().ToLowerInvariant();
        File.WriteAllText(Path.Combine(lower, "proteins.txt"), proteins.ToJsonString());
        Assert.Equal(davis.Targets, AffinityDataset.Load(lower).Targets);

        // Each ensemble member of each seed has its own random stream; seed 0's are what they were (the shipped model's).
        var streams = new HashSet<long>();
        foreach (ulong seed in new ulong[] { 0, 1, 2, 3 })
            for (int member = 0; member < 3; member++)
                Assert.True(streams.Add(AffinityTrainer.MemberStream(new DtiConfig { Seed = seed, Model = new DtiConfig.ModelSection { Ensemble = 3 } }, member)));
        Assert.Equal(2, AffinityTrainer.MemberStream(new DtiConfig { Model = new DtiConfig.ModelSection { Ensemble = 3 } }, 2));
    }

    [Fact]
    public void ABrokenBenchmarkIsRefusedWithTheFileAndLine()
    {
        string directory = TestData.TempDirectory();
        foreach (string file in new[] { "ligands_can.txt", "proteins.txt" }) File.Copy(Path.Combine(Davis, file), Path.Combine(directory, file));
        Directory.CreateDirectory(Path.Combine(directory, "folds"));
        File.WriteAllText(Path.Combine(directory, "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt"), "1 2 3\n");
        var e = Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory));
        Assert.Contains("drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt:1: 3 values, expected one per target (442)", e.Message);
        Assert.Contains("no such directory", Assert.Throws<BioForgeException>(() => AffinityDataset.Load(Path.Combine(directory, "missing"))).Message);
        // A target that is no protein is named with its file (the model's tokenizer named a position only).
        var targets = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Davis, "proteins.txt")))!.AsObject();
        string first = targets.First().Key;
        targets[first] = targets[first]!.GetValue<string>()[..50] + "9" + targets[first]!.GetValue<string>()[51..];
        File.WriteAllText(Path.Combine(directory, "proteins.txt"), targets.ToJsonString());
        Assert.EndsWith($"proteins.txt: target '{first}': '9' at position 51 is not an amino acid", Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory)).Message);
        // An id given twice (a .NET message without the file before).
        string drugs = File.ReadAllText(Path.Combine(Davis, "ligands_can.txt"));
        File.WriteAllText(Path.Combine(directory, "ligands_can.txt"), drugs[..drugs.LastIndexOf('}')] + ", \"11314340\": \"CCO\"}");
        Assert.EndsWith("ligands_can.txt: the id '11314340' is given twice", Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory)).Message);
    }

    /// <summary>Fold files name the fold and entry that is not an index (they failed with a bare .NET message).</summary>
    [Theory]
    [InlineData("[0.5]", "[[1],[2]]", "test_fold_setting1.txt: the test fold, entry 1: 0.5 is not an integer index")]
    [InlineData("[[0]]", "[[1],[2]]", "test_fold_setting1.txt: the test fold, entry 1: [0] is not an integer index")]
    [InlineData("[]", "[[1],[2]]", "test_fold_setting1.txt: the test fold is empty")]
    [InlineData("[0]", "[null,[1],[2]]", "train_fold_setting1.txt: training fold 0 is not a list of indices")]
    [InlineData("[0]", "[[1],[\"x\"]]", "train_fold_setting1.txt: training fold 1, entry 1: \"x\" is not an integer index")]
    [InlineData("[0]", "{}", "train_fold_setting1.txt: expected a JSON list of training folds")]
    // Folds that share a pair would test on what the model trained on (metrics that leak, printed without a word).
    [InlineData("[0, 5]", "[[1],[5]]", "test_fold_setting1.txt: the test fold holds too: folds must not share pairs")]
    [InlineData("[0, 0]", "[[1],[2]]", "test_fold_setting1.txt: the test fold holds pair 0, which it holds already")]
    [InlineData("[0]", "[[1, 2],[2]]", "training fold 1 holds pair 2, which")]
    public void FoldFilesNameTheEntryThatIsNotAnIndex(string testFold, string trainFolds, string expected)
    {
        string directory = TestData.TempDirectory();
        foreach (string file in new[] { "ligands_can.txt", "proteins.txt", "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt.gz" })
            File.Copy(Path.Combine(Davis, file), Path.Combine(directory, file));
        Directory.CreateDirectory(Path.Combine(directory, "folds"));
        File.WriteAllText(Path.Combine(directory, "folds", "test_fold_setting1.txt"), testFold);
        File.WriteAllText(Path.Combine(directory, "folds", "train_fold_setting1.txt"), trainFolds);
        Assert.Contains(expected, Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory)).Message);
    }

    [Fact]
    public void OversizedBenchmarkFilesAreRefusedAtTheLimitWhileReading()
    {
        // A matrix row without line breaks stops at the row limit, not after splitting megabytes of numbers.
        string directory = TestData.TempDirectory();
        foreach (string file in new[] { "ligands_can.txt", "proteins.txt" }) File.Copy(Path.Combine(Davis, file), Path.Combine(directory, file));
        File.WriteAllText(Path.Combine(directory, "drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt"), string.Concat(Enumerable.Repeat("1 ", 600_000)));
        var row = Assert.Throws<BioForgeException>(() => AffinityDataset.Load(directory));
        Assert.Contains("drug-target_interaction_affinities_Kd__Davis_et_al.2011v1.txt:1: line longer than 1,000,000 characters", row.Message);

        // A small .gz whose JSON expands past the limit fails there (it used to be read whole into one string).
        string bomb = TestData.TempDirectory();
        using (var gzip = new System.IO.Compression.GZipStream(File.Create(Path.Combine(bomb, "ligands_can.txt.gz")), System.IO.Compression.CompressionLevel.SmallestSize))
        using (var writer = new StreamWriter(gzip))
        {
            writer.Write("{\"D1\": \"");
            writer.Write(new string('C', AffinityDataset.MaxJsonLength + 1));
            writer.Write("\"}");
        }
        var json = Assert.Throws<BioForgeException>(() => AffinityDataset.Load(bomb));
        Assert.Contains("ligands_can.txt.gz:1: the JSON is longer than 16,000,000 characters", json.Message);
    }

    [Fact]
    public void ATrainedModelReloadsAndPredictsWhatTrainingReported()
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, $"""
            seed: 1
            data:
              dir: {Davis}
            features:
              morgan_bits: 256
            model:
              hidden: 32
            train:
              epochs: 3
              threads: 2
              device: cpu
              output_dir: {output}
            """);
        var run = DtiConfig.Load(config);
        var trained = AffinityTrainer.Train(run);
        Assert.All(trained.BestEpochs, e => Assert.InRange(e, 1, 3));
        Assert.True(trained.Test["mse"] < 0.6, $"test MSE {trained.Test["mse"]} (0.49 when written): not clearly better than predicting the mean (about 0.75)");
        Assert.True(trained.Test["ci"] > 0.7, $"test CI {trained.Test["ci"]}");

        // The written model, loaded on its own, scores the test fold as training did.
        var (code, text, error) = CliRun("dti", "eval", "--model", trained.ModelDirectory, "--data", Davis, "--device", "cpu");
        Assert.True(code == 0, error);
        // Within the printed precision: other thread counts sum in another order, which can tip the fourth digit.
        foreach (string metric in new[] { "mse", "ci" })
        {
            var printed = System.Text.RegularExpressions.Regex.Match(text, $@"\b{metric} (-?[0-9.]+)");
            Assert.True(printed.Success, $"dti eval printed no {metric}: {text}");
            Assert.InRange(double.Parse(printed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), trained.Test[metric] - 2e-4, trained.Test[metric] + 2e-4);
        }
        Assert.True(File.Exists(Path.Combine(output, "test_predictions.csv")));
    }

    /// <summary>A small model trained once (no language models: seconds), shared by the screening tests.</summary>
    private static readonly Lazy<string> SmallModel = new(() =>
    {
        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, $"seed: 2\ndata:\n  dir: {Davis}\nfeatures:\n  morgan_bits: 256\nmodel:\n  hidden: 32\ntrain:\n  epochs: 2\n  threads: 2\n  device: cpu\n  output_dir: {output}\n");
        return AffinityTrainer.Train(DtiConfig.Load(config)).ModelDirectory;
    });

    private const string Abl1Kinase = "SPNYDKWEMERTDITMKHKLGGGQYGEVYEGVWKKYSLTVAVKTLKEDTMEVEEFLKEAAVMKEIKHPNLVQLLGVCTREPPFYIITEFMTYGNLLDYLRECNRQEVNAVVLLYMATQISSAMEYLEKKNFIHRDLAARNCLVGENHLVKVADFGLSRLMTGDTYTAHAGAKFPIKWTAPESLAYNKFSIKSDVWAFGVLLWEIATYGMSPYPGIDLSQVYELLEKDYRMERPEGCPEKVYELMRACWQWNPSDRPSFAEIHQAFETMFQESSISDEVEKEL";

    [Fact]
    public void ScreeningRanksALibrarySkipsUnreadableLinesAndWritesTheReport()
    {
        string library = Path.Combine(TestData.TempDirectory(), "library.smi");
        // Line 8: RDKit reads it, but QED's RemoveHs cannot sanitize it again (it ended the screen after every prediction).
        File.WriteAllLines(library, ["CC(=O)Nc1ccc(O)cc1", "not_a_smiles", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1\timatinib", "", "C1CC(", "c1ccccc1O phenol", "CCN(CC)CC",
            "CC[n-]1CCCCN1C(=O)c1ccc(CSC)cc1"]);
        string hits = Path.Combine(TestData.TempDirectory(), "hits.csv"), report = Path.ChangeExtension(hits, ".html");
        var (code, text, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--top", "3", "--out", hits, "--report", report,
            "--model", SmallModel.Value, "--device", "cpu", "--threads", "2");
        Assert.True(code == 0, error);
        Assert.Contains("7 molecules read, 4 scored, 3 skipped (unreadable)", text);
        Assert.Contains("skipped line 2:", text);
        var rows = File.ReadAllLines(hits);
        Assert.StartsWith("rank,id,smiles,predicted_pkd,qed,sa,logp,mw,tpsa,hbd,hba,alerts,nearest_known_binder,nearest_binder_name,nearest_binder_similarity", rows[0]);
        Assert.Equal(4, rows.Length); // header + top 3
        var affinities = rows.Skip(1).Select(r => double.Parse(r.Split(',')[3], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(affinities.OrderByDescending(a => a), affinities);
        var ids = rows.Skip(1).Select(r => r.Split(',')[1]).ToList();
        Assert.Contains("imatinib", ids); // the name after the SMILES, not "line 3"
        Assert.All(ids, id => Assert.True(id is "imatinib" or "phenol" || id.StartsWith("line ", StringComparison.Ordinal), id));
        Assert.Contains("Virtual screening", File.ReadAllText(report));
    }

    /// <summary>
    /// A salt is screened as its parent, neutralized, and a molecule given three times (a salt, another spelling) is one hit under its
    /// three ids: they took three of the top places. Each hit says how like the model's training ligands it is, and the
    /// run where the target stands among the training targets.
    /// </summary>
    [Fact]
    public void SaltsAreScreenedAsTheirParentAndCopiesAreOneHit()
    {
        string library = Path.Combine(TestData.TempDirectory(), "library.smi");
        File.WriteAllLines(library, ["CC(=O)Nc1ccc(O)cc1", "CC(=O)Nc1ccc(O)cc1.Cl paracetamol_hcl", "OC1=CC=C(NC(C)=O)C=C1 paracetamol_kekule",
            "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1.CS(=O)(=O)O imatinib_mesylate", "c1ccccc1O phenol",
            "CC(C)[NH2+]CC(O)c1ccc(O)c(O)c1 protonated", "C[N+](C)(C)CCO choline", "O water", "[Na+].[Cl-] brine"]);
        string hits = Path.Combine(TestData.TempDirectory(), "hits.csv");
        var (code, text, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--top", "10", "--out", hits, "--model", SmallModel.Value, "--device", "cpu", "--threads", "2");
        Assert.True(code == 0, error);
        // Water and a salt with no organic parent are no candidates: counted, not ranked.
        Assert.Contains("9 molecules read, 7 scored, 0 skipped (unreadable), 2 without carbon (not scored)", text);
        var rows = Csv.ReadRows(hits, out var header).Select(r => header.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second)).ToList();
        Assert.Equal(5, rows.Count);
        // Neutralized as RDKit's Uncharger does (checked in Python): a protonation state goes, a quaternary nitrogen stays.
        Assert.Equal("CC(C)NCC(O)c1ccc(O)c(O)c1", rows.Single(r => r["id"] == "protonated")["smiles"]);
        Assert.Equal("C[N+](C)(C)CCO", rows.Single(r => r["id"] == "choline")["smiles"]);
        var paracetamol = rows.Single(r => r["smiles"] == "CC(=O)Nc1ccc(O)cc1");
        Assert.Equal("line 1; paracetamol_hcl; paracetamol_kekule", paracetamol["id"]);
        var imatinib = rows.Single(r => r["id"] == "imatinib_mesylate");
        Assert.Equal("Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1", imatinib["smiles"]);
        Assert.Equal(493.6, double.Parse(imatinib["mw"], CultureInfo.InvariantCulture), 0.1); // the mesylate's 589.7 before
        Assert.Equal(1.0, double.Parse(imatinib["nearest_training_ligand_similarity"], CultureInfo.InvariantCulture)); // imatinib is a Davis ligand
        Assert.All(rows, r => Assert.InRange(double.Parse(r["nearest_training_ligand_similarity"], CultureInfo.InvariantCulture), 0, 1));
        Assert.Contains("the target is ABL1, one of the 379 the affinity model trained on", text);
        Assert.Contains("test fold, whose targets (100%) and ligands (100%) also appear in training", text);

        // A copy of the heap's lowest hit (here its only one) joins it too: a full heap skipped copies that did not beat it.
        using var model = AffinityModel.Load(SmallModel.Value, TestData.Cpu.Device);
        var twice = new[] { "CCO", "OCC" }.Select((s, i) => new MoleculeRecord(s, s, false, i + 1, new Dictionary<string, string> { [MoleculeSource.NameProperty] = $"copy{i + 1}" })).ToList();
        Assert.Equal("copy1; copy2", Assert.Single(VirtualScreen.Run(model, Abl1Kinase, twice, new ScreenOptions { Top = 1 }).Hits).Id);
    }

    /// <summary>
    /// A chemist's constraints: molecules outside a limit are not scored (and counted), an allowed alert is no alert, and
    /// their own actives are the nearest known binders where they are nearest, under their names.
    /// </summary>
    [Fact]
    public void LimitsAllowedAlertsAndActivesShapeAScreen()
    {
        string library = Path.Combine(TestData.TempDirectory(), "library.smi"), actives = Path.Combine(TestData.TempDirectory(), "actives.smi");
        File.WriteAllLines(library, ["CC(=O)Nc1ccc(O)cc1 paracetamol", "CCCCCCCCCCCCCCCCCCCC(=O)O arachidic", "C=CC(=O)N1CCC(CC1)n1nc(-c2ccc(Oc3ccccc3)cc2)c2c(N)ncnc12 ibrutinib",
            "C=CC(=O)Nc1ccccc1 acrylanilide"]);
        File.WriteAllLines(actives, ["C=CC(=O)N1CCC(CC1)n1nc(-c2ccc(Oc3ccccc3)cc2)c2c(N)ncnc12 known_ibrutinib", "CC(=O)Nc1ccc(O)cc1.Cl known_paracetamol"]);
        string hits = Path.Combine(TestData.TempDirectory(), "hits.csv");
        var (code, text, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--out", hits, "--model", SmallModel.Value, "--device", "cpu", "--threads", "2",
            "--limit", "ro5", "--allow-alert", "Michael_acceptor_1", "--actives", actives);
        Assert.True(code == 0, error);
        Assert.Contains("4 molecules read, 3 scored, 0 skipped (unreadable), 1 outside the limits", text);
        Assert.Contains("and 2 from --actives", text);
        var rows = Csv.ReadRows(hits, out var header).Select(r => header.Zip(r.Fields).ToDictionary(p => p.First, p => p.Second)).ToDictionary(r => r["id"]);
        Assert.Equal(["acrylanilide", "ibrutinib", "paracetamol"], rows.Keys.Order());
        Assert.Equal("", rows["ibrutinib"]["alerts"]); // Brenk's Michael_acceptor_1, allowed
        Assert.Equal(("known_ibrutinib", "1.000"), (rows["ibrutinib"]["nearest_binder_name"], rows["ibrutinib"]["nearest_binder_similarity"]));
        Assert.Equal(("known_paracetamol", "1.000"), (rows["paracetamol"]["nearest_binder_name"], rows["paracetamol"]["nearest_binder_similarity"])); // the salt's parent

        (code, _, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--out", hits, "--model", SmallModel.Value, "--device", "cpu", "--limit", "mw<=100");
        Assert.Equal(2, code);
        Assert.Contains("all 4 molecules it could read are outside the limits (mw<=100)", error);
        File.AppendAllLines(actives, ["C1CC( broken"]);
        (code, _, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--out", hits, "--model", SmallModel.Value, "--device", "cpu", "--actives", actives);
        Assert.Equal(2, code);
        Assert.Contains("actives.smi: line 3", error);
    }

    /// <summary>A cold-drug split holds out whole drugs, a salt with its parent (KIBA lists three such pairs under two SMILES each).</summary>
    [Fact]
    public void AColdDrugSplitKeepsASaltWithItsParent()
    {
        var davis = AffinityDataset.Load(Davis);
        var (test, train) = davis.Folds("cold_drug", seed: 0);
        int[] FoldOf(AffinityDataset data, (int[] Test, int[][] Train) folds)
        {
            var fold = new int[data.Drugs.Count];
            foreach (int i in folds.Test) fold[data.Pairs[i].Drug] = 0;
            for (int f = 0; f < folds.Train.Length; f++)
                foreach (int i in folds.Train[f]) fold[data.Pairs[i].Drug] = f + 1;
            return fold;
        }
        var before = FoldOf(davis, (test, train));
        // Drug 1 written as drug 0's hydrochloride: one drug now, in one fold.
        var drugs = davis.Drugs.ToList();
        drugs[1] = drugs[1] with { Text = drugs[0].Text + ".Cl" };
        var salted = new AffinityDataset { Name = davis.Name, Measure = davis.Measure, Drugs = drugs, Targets = davis.Targets, Pairs = davis.Pairs, TestFold = davis.TestFold, TrainFolds = davis.TrainFolds };
        var after = FoldOf(salted, salted.Folds("cold_drug", seed: 0));
        Assert.Equal(after[0], after[1]);
        Assert.NotEqual(before[0], before[1]); // apart while they were two drugs, at this seed
    }

    /// <summary>A protein unlike every training target (ubiquitin against Davis's kinases) is called outside the model's domain.</summary>
    [Fact]
    public void ATargetUnlikeEveryTrainingTargetIsOutsideTheDomain()
    {
        var domain = ApplicabilityDomain.Load(SmallModel.Value)!;
        var ubiquitin = domain.NearestTarget("MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG")!;
        Assert.False(ubiquitin.Related);
        Assert.StartsWith("warning: the target is outside the affinity model's domain", ubiquitin.Describe());
        var kinase = domain.NearestTarget(Abl1Kinase)!;
        Assert.True(kinase.Seen, $"{kinase}");
        Assert.Equal("ABL1", kinase.Name);
    }

    /// <summary>
    /// A cold-target split holds out whole targets — grouped by sequence, so no mutant construct shares its wild type's
    /// answers across the split — and its model records that its test targets were never seen (dti eval scores the same pairs).
    /// </summary>
    [Fact]
    public void AColdTargetSplitTestsOnTargetsNeverSeenInTraining()
    {
        var davis = AffinityDataset.Load(Davis);
        var (test, train) = davis.Folds("cold_target", seed: 3, targetIdentity: 0.95); // dti train's default
        Assert.Equal(davis.Pairs.Count, test.Length + train.Sum(f => f.Length));
        Assert.Equal(Enumerable.Range(0, davis.Pairs.Count), test.Concat(train.SelectMany(f => f)).Order());
        string Sequence(int pair) => davis.Targets[davis.Pairs[pair].Target].Text;
        var trained = train.SelectMany(f => f).Select(Sequence).ToHashSet();
        Assert.DoesNotContain(test.Select(Sequence), trained.Contains);
        Assert.InRange(test.Length, davis.Pairs.Count / 9, davis.Pairs.Count / 4); // about a sixth
        Assert.Equal(test, davis.Folds("cold_target", seed: 3, 0.95).Test);
        Assert.NotEqual(test, davis.Folds("cold_target", seed: 4, 0.95).Test);
        Assert.Contains("data.split must be", Assert.Throws<BioForgeException>(() => davis.Folds("cold", 0)).Message);
        // By family: at 0.95 the two CDK11 isoforms (CDC2L1, CDC2L2) share a part; at 0.7 so do SRC's paralogs. One key
        // fewer reshuffles the whole deal, so each identity is a split of its own (1 gives the identical-sequence split).
        string[] Part(double? identity, params string[] names)
        {
            var (t, _) = davis.Folds("cold_target", 3, identity);
            var tested = t.Select(i => davis.Targets[davis.Pairs[i].Target].Id).ToHashSet();
            return [.. names.Select(n => tested.Contains(n) ? "test" : "train").Distinct()];
        }
        Assert.Single(Part(0.95, "CDC2L1", "CDC2L2"));
        Assert.Single(Part(0.7, "SRC", "YES", "FYN", "FGR"));
        Assert.Single(Part(0.7, "AKT1", "AKT2", "AKT3"));
        Assert.Equal(378, davis.TargetFamilies(0.95).Distinct().Count());
        Assert.Equal(davis.Folds("cold_target", 3).Test, davis.Folds("cold_target", 3, 1.0).Test);

        string output = TestData.TempDirectory();
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, $"seed: 3\ndata:\n  dir: {Davis}\n  split: cold_target\nfeatures:\n  morgan_bits: 256\nmodel:\n  hidden: 32\ntrain:\n  epochs: 1\n  threads: 2\n  device: cpu\n  output_dir: {output}\n");
        var model = AffinityTrainer.Train(DtiConfig.Load(config));
        Assert.Equal(test.Length, model.TestPairs);
        Assert.Equal((0.0, 1.0), ApplicabilityDomain.Load(model.ModelDirectory)!.TestSeen);
        var (code, text, error) = CliRun("dti", "eval", "--model", model.ModelDirectory, "--data", Davis, "--device", "cpu", "--threads", "2");
        Assert.True(code == 0, error);
        Assert.Contains($"{test.Length:N0}", text);
        // Scored against KIBA's scores, a pKd model would print numbers of nothing: refused, naming both.
        (code, _, error) = CliRun("dti", "eval", "--model", model.ModelDirectory, "--data", Path.Combine(Repository.Root, "data", "kiba"), "--device", "cpu", "--threads", "2");
        Assert.Equal(2, code);
        Assert.Contains("holds KIBA score values; the model predicts pKd", error);
    }

    /// <summary>
    /// For a target it did not train on, the shipped model's notes give what the same recipe measured on unseen targets
    /// (its generalization.json, from cold-split runs) — as a measure of a related target only: for one unlike every
    /// training target (KRAS) they say that test does not measure it, and mark the target outside; for one it trained
    /// on they give no cold-split figure, and say which constructs share its sequence.
    /// </summary>
    [Fact]
    public void TheShippedModelSaysHowItDidOnTargetsItNeverSaw()
    {
        using var model = AffinityModel.Load(Path.Combine(Repository.Root, "models", "dti-davis"), TestData.Cpu.Device);
        const string kras = "MTEYKLVVVGAGGVGKSALTIQLIQNHFVDEYDPTIEDSYRKQVVIDGETCLLDILDTAGQEEYSAMRDQYMRTGEGFLCVFAINNTKSFEDIHHYREQIKRVKDSDDVPMVLVGNKCDLPSRTVDTKQAQDLARSYGIPFIETSAKTRQGVDDAFYTLVREIRKHKEKMSKDGKKKKKKSKTKCVIM";
        var notes = ApplicabilityDomain.Notes(model, kras, []);
        Assert.True(notes.TargetOutside);
        Assert.StartsWith("warning: the target is outside the affinity model's domain", notes.Sentences[0]);
        Assert.Contains(notes.Sentences, n => n.StartsWith("the model's test on held-out targets (mse ", StringComparison.Ordinal)
            && n.EndsWith("so it does not measure a protein unlike all of them, as this one is", StringComparison.Ordinal));

        string abl1Sequence = ProteinTarget.Resolve("ABL1").Sequence;
        var abl1 = ApplicabilityDomain.Notes(model, abl1Sequence, []);
        Assert.False(abl1.TargetOutside);
        Assert.DoesNotContain(abl1.Sentences, n => n.Contains("held out", StringComparison.Ordinal));
        // Davis's 15 ABL1 constructs (T315I, E255K, the phosphorylated forms…) share the sequence: the model learned them as one.
        Assert.Contains("its training data give this sequence to 15 constructs (ABL1, ABL1p, ", abl1.Sentences[0]);
        Assert.Contains("its predictions lean towards their mean, not towards the wild type's", abl1.Sentences[0]);
        Assert.DoesNotContain("constructs", ApplicabilityDomain.Notes(model, ProteinTarget.Resolve("AAK1").Sequence, []).Sentences[0]);

        // A relative (ABL1 with every tenth residue changed: 90 % identical) is neither seen nor outside: the cold-target figure is its measure.
        string relative = string.Concat(abl1Sequence.Select((c, i) => i % 10 == 5 ? (c == 'W' ? 'F' : 'W') : c));
        var related = ApplicabilityDomain.Notes(model, relative, []);
        Assert.False(related.TargetOutside);
        Assert.Contains(related.Sentences, n => n.StartsWith("trained the same way with whole targets held out, the model scored on targets it never saw: mse ", StringComparison.Ordinal));
    }

    /// <summary>
    /// Davis gives a mutant or phosphorylated construct its protein's sequence: such a name would be answered with the
    /// plain protein's affinities (imatinib as a strong binder of ABL1(T315I), measured at 10 µM there), so it is refused
    /// naming the name that stands for the sequence; KIBA's accession of the same sequence takes the plain name.
    /// </summary>
    [Theory]
    [InlineData("ABL1(T315I)", "ABL1(T315I)", "ABL1")]
    [InlineData("abl1p", "ABL1p", "ABL1")]
    [InlineData("EGFR(L858R)", "EGFR(L858R)", "EGFR")]
    [InlineData("JAK1(JH2domain-pseudokinase)", "JAK1(JH2domain-pseudokinase)", "JAK1(JH1domain-catalytic)")]
    public void ADavisConstructSharingItsProteinsSequenceIsRefusedByName(string given, string davisName, string plain)
    {
        var e = Assert.Throws<BioForgeException>(() => ProteinTarget.Resolve(given));
        Assert.Contains($"gives {davisName} the same sequence as {plain}", e.Message);
        Assert.Contains($"use --target {plain}", e.Message);
        Assert.Equal(plain, ProteinTarget.Resolve(plain.ToLowerInvariant()).Name);
    }

    /// <summary>The shipped model records what it trained on: the targets and ligands of data/davis's training folds.</summary>
    [Fact]
    public void TheShippedAffinityModelRecordsItsTrainingSet()
    {
        var davis = AffinityDataset.Load(Davis);
        var trained = davis.TrainFolds.SelectMany(f => f).Select(i => davis.Pairs[i]).ToList();
        string folder = Path.Combine(Repository.Root, "models", "dti-davis", AffinityModel.TrainingSetFolder);
        Assert.Equal(trained.Select(p => p.Target).Distinct().Order().Select(t => davis.Targets[t]), AffinityDataset.ReadTargets(folder));
        Assert.Equal(trained.Select(p => p.Drug).Distinct().Order().Select(d => davis.Drugs[d]), AffinityDataset.ReadDrugs(folder));
    }

    /// <summary>A screen cancelled once its library is read stops in the profiling of its hits, not after it.</summary>
    [Fact]
    public void ACancelledScreenStopsWhileProfilingItsHits()
    {
        using var model = AffinityModel.Load(SmallModel.Value, TestData.Cpu.Device);
        string[] smiles = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1O", "CCN(CC)CC", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"];
        var library = smiles.Select((s, i) => new MoleculeRecord($"#{i + 1}", s, false, i + 1, new Dictionary<string, string>())).ToList();
        using var cancellation = new CancellationTokenSource();
        var read = new Counted(library.Count, cancellation);
        Assert.Throws<OperationCanceledException>(() => VirtualScreen.Run(model, Abl1Kinase, library, new ScreenOptions { Top = 4 }, read, cancellation.Token));
        Assert.Equal(library.Count, read.Total); // every molecule was scored before the cancellation
        Assert.Equal(4, VirtualScreen.Run(model, Abl1Kinase, library, new ScreenOptions { Top = 4 }).Hits.Count);
    }

    /// <summary>Cancels once the whole library has been reported scored.</summary>
    private sealed class Counted(int size, CancellationTokenSource cancellation) : IProgress<int>
    {
        public int Total { get; private set; }

        public void Report(int value)
        {
            Total += value;
            if (Total >= size) cancellation.Cancel();
        }
    }

    [Fact]
    public void ScreeningRefusesAnEmptyLibraryAndANonProteinTarget()
    {
        string empty = Path.Combine(TestData.TempDirectory(), "empty.smi");
        File.WriteAllText(empty, "\n\n");
        string hits = Path.Combine(TestData.TempDirectory(), "hits.csv");
        var (code, _, error) = CliRun("screen", "--target", Abl1Kinase, "--library", empty, "--out", hits, "--model", SmallModel.Value, "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("holds no molecules", error);
        Assert.False(File.Exists(hits));
        string inorganic = Path.Combine(TestData.TempDirectory(), "inorganic.smi");
        File.WriteAllLines(inorganic, ["O", "[Na+].[Cl-]", "N"]);
        (code, _, error) = CliRun("screen", "--target", Abl1Kinase, "--library", inorganic, "--out", hits, "--model", SmallModel.Value, "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("none of the 3 molecules it could read has a carbon atom", error);
        Assert.False(File.Exists(hits));
        (code, _, error) = CliRun("screen", "--target", Abl1Kinase[..3] + "*" + Abl1Kinase[3..40], "--library", empty, "--out", hits, "--model", SmallModel.Value, "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("'*' at position 4 is not an amino acid", error);
        (code, _, error) = CliRun("screen", "--target", "EGFRX", "--library", empty, "--out", hits, "--model", SmallModel.Value, "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("did you mean EGFR?", error);
        (code, _, error) = CliRun("screen", "--target", "targets/abl1.fasta", "--library", empty, "--out", hits, "--model", SmallModel.Value, "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("target: file targets/abl1.fasta not found", error);
    }

    /// <summary>
    /// A model whose weights went NaN (a diverged training, a damaged file) scores a molecule 0 with the reason in an
    /// optimization, where its NaN would make the agent's loss NaN; a screen refuses it rather than rank NaNs.
    /// </summary>
    [Fact]
    public void AModelPredictingNaNScoresZeroWithItsReasonAndIsRefusedByScreening()
    {
        string broken = TestData.TempDirectory();
        foreach (string file in Directory.GetFiles(SmallModel.Value))
            File.Copy(file, Path.Combine(broken, Path.GetFileName(file)));
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            List<KeyValuePair<string, TorchSharp.torch.Tensor>> tensors;
            using (var checkpoint = SafetensorsCheckpoint.Open(broken))
                tensors = [.. checkpoint.Names.Order().Select(name => KeyValuePair.Create(name, checkpoint.Load(name).clone()))];
            foreach (var (_, tensor) in tensors.Where(kv => kv.Value.is_floating_point()))
                tensor.fill_(double.NaN);
            SafetensorsCheckpoint.Save(broken, tensors);
        }
        using (var scoring = new ScoringFunction([new ComponentSettings { Type = "affinity", Name = "pKd", Model = broken, Target = Abl1Kinase,
            Transform = new TransformSettings { Kind = "sigmoid", Low = 5, High = 9 } }], "arithmetic", TestData.Cpu.Device))
        {
            var scored = scoring.Score(["CCO", "c1ccccc1O"]);
            Assert.All(scored, s => Assert.Equal(0, s.Score));
            Assert.All(scored, s => Assert.Equal("pKd: no value (NaN)", s.Error));
        }

        string library = Path.Combine(TestData.TempDirectory(), "library.smi"), hits = Path.Combine(TestData.TempDirectory(), "hits.csv");
        File.WriteAllLines(library, ["CCO", "c1ccccc1O"]);
        var (code, _, error) = CliRun("screen", "--target", Abl1Kinase, "--library", library, "--out", hits, "--model", broken, "--device", "cpu", "--threads", "2");
        Assert.Equal(2, code);
        Assert.Contains("NaN", error);
        Assert.False(File.Exists(hits));
    }

    [Fact]
    public void BadAffinityConfigurationsAreRefusedWithTheKey()
    {
        string config = Path.Combine(TestData.TempDirectory(), "dti.yaml");
        File.WriteAllText(config, "data:\n  dir: x\ntrain:\n  output_dir: y\n  epocs: 3\n");
        Assert.Contains("epocs", Assert.Throws<BioForgeException>(() => DtiConfig.Load(config)).Message);
        File.WriteAllText(config, "data:\n  dir: x\nmodel:\n  dropout: 1.5\ntrain:\n  output_dir: y\n");
        Assert.Contains("model.dropout must be in [0, 1)", Assert.Throws<BioForgeException>(() => DtiConfig.Load(config)).Message);
    }

    private static (int Code, string Out, string Err) CliRun(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = Cli.Cli.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>
    /// Davis gives ABL1's mutant constructs the wild type's sequence; a binder of ABL1(T315I) only (drug 156422: pKd 6.1
    /// on ABL1, 7.2 on T315I) is not a known binder of ABL1.
    /// </summary>
    [Fact]
    public void KnownBindersOfAKinaseAreTheWildTypesNotItsMutants()
    {
        string model = Path.Combine(Repository.Root, "models", "dti-davis");
        string abl1 = BioForge.IO.FastaReader.Read(Path.Combine(Repository.Root, "data", "targets", "abl1.fasta")).Single().Sequence;
        var binders = AffinityModel.KnownBinders(model, abl1);
        var wildType = File.ReadLines(Path.Combine(model, AffinityModel.KnownBindersFile)).Skip(1).Select(l => l.Split(','))
            .Where(f => f[1] is "ABL1" or "ABL1p").Select(f => f[2]).Distinct().Order().ToList();
        Assert.Equal(wildType, binders.Select(b => b.Name).Order().ToList());
        Assert.DoesNotContain(binders, b => b.Name == "156422");

        // Davis gives JAK1's two domains the whole protein's sequence: named, a domain keeps its own binders; given the
        // sequence alone, each binder says which domain it was measured on.
        string jak1 = ProteinTarget.Resolve("JAK1(JH1domain-catalytic)").Sequence;
        var catalytic = AffinityModel.KnownBinders(model, jak1, "JAK1(JH1domain-catalytic)");
        Assert.NotEmpty(catalytic);
        Assert.All(catalytic, b => Assert.Equal("JAK1(JH1domain-catalytic)", b.Construct));
        Assert.DoesNotContain(catalytic, b => b.Name == "9809715"); // nintedanib: pKd 5.6 on the kinase domain, 8.3 on the pseudokinase
        var either = AffinityModel.KnownBinders(model, jak1);
        Assert.Contains(either, b => b.Name == "9809715" && b.Construct == "JAK1(JH2domain-pseudokinase)");
        Assert.Equal(either, AffinityModel.KnownBinders(model, jak1, "sp|P23458|JAK1_HUMAN")); // a name that is no construct of Davis's

        // A damaged file is named with its line; one of other columns is refused, not read as "no binders".
        string copy = TestData.TempDirectory();
        string path = Path.Combine(copy, AffinityModel.KnownBindersFile);
        var lines = File.ReadAllLines(Path.Combine(model, AffinityModel.KnownBindersFile));
        int abl1Line = Array.FindIndex(lines, l => l.Split(',')[1] == "ABL1");
        lines[abl1Line] = string.Join(',', lines[abl1Line].Split(',')[..^1]) + ",abc";
        File.WriteAllLines(path, lines);
        Assert.Contains($"{path}:{abl1Line + 1}: affinity 'abc' is not a number", Assert.Throws<BioForgeException>(() => AffinityModel.KnownBinders(copy, abl1)).Message);
        File.WriteAllText(path, "smiles,name\nCCO,x\n");
        Assert.Contains("expected the columns target_sha256,target,drug,smiles,affinity", Assert.Throws<BioForgeException>(() => AffinityModel.KnownBinders(copy, abl1)).Message);
    }
}

public sealed class SequenceFamilyTests
{
    /// <summary>
    /// A protein, a point mutant of it, a fragment of it, a 75 %-identical paralog, an unrelated protein and a chimera
    /// (half the protein, half unrelated): at 0.95 identity the first three are one family; at 0.7 the paralog joins; the
    /// unrelated one never does, nor the chimera, identical to the protein over only half of either.
    /// </summary>
    [Fact]
    public void FamiliesLinkSequencesAlikeOverMostOfTheShorterOne()
    {
        var random = new Random(5);
        const string letters = "ACDEFGHIKLMNPQRSTVWY";
        string Draw(int length) => new([.. Enumerable.Range(0, length).Select(_ => letters[random.Next(letters.Length)])]);
        string Mutate(string s, double share)
        {
            var chars = s.ToCharArray();
            foreach (int i in Enumerable.Range(0, s.Length).OrderBy(_ => random.Next()).Take((int)(share * s.Length)))
                chars[i] = letters[(letters.IndexOf(chars[i]) + 1 + random.Next(letters.Length - 1)) % letters.Length];
            return new string(chars);
        }
        string protein = Draw(300);
        string[] sequences = [protein, Mutate(protein, 0.01), protein[100..250].ToLowerInvariant(), Mutate(protein, 0.25), Draw(300), protein[..150] + Draw(150)];
        Assert.Equal([0, 0, 0, 1, 2, 3], BioForge.Proteins.SequenceFamilies.Group(sequences, 0.95));
        Assert.Equal([0, 0, 0, 0, 1, 2], BioForge.Proteins.SequenceFamilies.Group(sequences, 0.7));
    }
}
