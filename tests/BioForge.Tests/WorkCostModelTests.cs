using BioForge.Server;

namespace BioForge.Tests;

/// <summary>
/// The device worker's prediction of a piece's time from the pieces before it. The durations here are given, not
/// measured: no clock runs, so the arithmetic of the fit is checked exactly, whatever the machine's load.
/// </summary>
public sealed class WorkCostModelTests
{
    private static TimeSpan Seconds(double s) => TimeSpan.FromSeconds(s);

    /// <summary>The fit's prediction for <paramref name="units"/> of <paramref name="kind"/>, in seconds.</summary>
    private static double Predicted(WorkCostModel model, string kind, double units) => model.Predict(new WorkSize(kind, units)).TotalSeconds;

    /// <summary>
    /// Small pieces cost mostly a fixed part: a rate per unit learnt from them priced a 1,000-residue request at five
    /// times its time. With pieces of two sizes the fit separates the parts.
    /// </summary>
    [Fact]
    public void ALargePieceIsPricedByTheFixedAndPerUnitParts()
    {
        var model = new WorkCostModel();
        foreach (double units in new[] { 20.0, 200, 20, 20, 200, 20 })
            model.Add(new WorkSize("fill-mask", units), Seconds(0.1 + 0.001 * units));
        Assert.Equal(1.1, Predicted(model, "fill-mask", 1000), 6);
        Assert.Equal(0.12, Predicted(model, "fill-mask", 20), 6);
    }

    [Fact]
    public void PiecesOfOneSizePriceOthersInProportion()
    {
        var model = new WorkCostModel();
        Assert.Equal(TimeSpan.Zero, model.Predict(new WorkSize("contacts", 100)));
        Assert.False(model.Knows("contacts"));
        model.Add(new WorkSize("contacts", 100), Seconds(0.5));
        model.Add(new WorkSize("contacts", 100), Seconds(0.7));
        Assert.True(model.Knows("contacts"));
        // The newer piece weighs more: (0.8 · 0.5 + 0.7) / 1.8 s for 100 units.
        Assert.Equal(2 * (0.8 * 0.5 + 0.7) / 1.8, Predicted(model, "contacts", 200), 6);
        Assert.Equal(TimeSpan.Zero, model.Predict(new WorkSize("contacts", 0)));
        Assert.Equal(TimeSpan.Zero, model.Predict(new WorkSize("depict", 10)));
    }

    /// <summary>
    /// Noisy times can tilt a fitted line below zero, and sizes within a few percent of each other tell nothing of the
    /// parts: the time is then proportional, so a larger piece is never priced below the rate the small ones showed.
    /// </summary>
    [Fact]
    public void ANoisyFitNeverPricesALargePieceLow()
    {
        var falling = new WorkCostModel();
        falling.Add(new WorkSize("props", 10), Seconds(0.3));
        falling.Add(new WorkSize("props", 20), Seconds(0.1));
        double rate = (0.8 * 0.3 + 0.1) / (0.8 * 10 + 20);
        Assert.Equal(1000 * rate, Predicted(falling, "props", 1000), 6);

        // Nearly one size, the larger slower by noise: the flat line this once gave priced 1,000 units like 100.
        var narrow = new WorkCostModel();
        narrow.Add(new WorkSize("embed", 104), Seconds(0.10));
        narrow.Add(new WorkSize("embed", 96), Seconds(0.11));
        Assert.True(Predicted(narrow, "embed", 1000) > 0.9, $"{Predicted(narrow, "embed", 1000)} s");

        // Steeper than proportional (the line would cross zero above no units): taken through zero instead.
        var steep = new WorkCostModel();
        steep.Add(new WorkSize("screen", 10), Seconds(0.01));
        steep.Add(new WorkSize("screen", 20), Seconds(1.0));
        Assert.True(Predicted(steep, "screen", 1) > 0);
        Assert.True(steep.Predict(new WorkSize("screen", 40)) > steep.Predict(new WorkSize("screen", 20)));
    }
}
