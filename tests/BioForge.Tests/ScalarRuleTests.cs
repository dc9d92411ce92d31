using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace BioForge.Tests;

/// <summary>
/// The Scalars rule of docs/architecture.md, checked by the compiler rather than by reading: no C# number may become a
/// TorchSharp <c>Scalar</c> implicitly in the library, because the temporary can be finalized while LibTorch still
/// reads it. Numbers go through <c>ScalarArithmetic</c> or a <c>using var scalar = x.ToScalar()</c>.
/// </summary>
public sealed class ScalarRuleTests
{
    [Fact]
    public void NoNumberBecomesAScalarImplicitlyInTheLibrary()
    {
        string source = Path.Combine(Repository.Root, "src", "BioForge");
        var trees = Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), new CSharpParseOptions(LanguageVersion.Preview), f))
            .Append(CSharpSyntaxTree.ParseText(ImplicitUsings, new CSharpParseOptions(LanguageVersion.Preview)))
            .ToList();
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Concat(Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll"))
            .Where(IsManaged)
            .GroupBy(Path.GetFileName).Select(g => MetadataReference.CreateFromFile(g.First()));
        var compilation = CSharpCompilation.Create("BioForgeScalarCheck", trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, allowUnsafe: true, nullableContextOptions: NullableContextOptions.Enable));
        var scalar = compilation.GetTypeByMetadataName("TorchSharp.Scalar");
        Assert.NotNull(scalar);
        // Source generators (regular expressions, P/Invoke marshalling) do not run here, so their partial members stay
        // unimplemented and flow analysis around them complains; what matters is that every name and type resolves.
        var errors = compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && d.Id is "CS0012" or "CS0103" or "CS0234" or "CS0246" or "CS1061" or "CS0117").Take(5).ToList();
        Assert.True(errors.Count == 0, "the library did not compile for the check: " + string.Join("; ", errors));

        var hidden = TorchSharpMembersThatMakeScalars();
        Assert.Contains("Tensor.op_Addition(Tensor,Tensor)", hidden); // the scan works: tensor + tensor passes alpha = 1

        var found = new List<string>();
        foreach (var tree in trees)
        {
            var model = compilation.GetSemanticModel(tree);
            foreach (var expression in tree.GetRoot().DescendantNodes().OfType<ExpressionSyntax>())
            {
                // The name of a member access converts only as the whole access: report that once.
                if (expression.Parent is MemberAccessExpressionSyntax access && access.Name == expression) continue;
                var conversion = model.GetConversion(expression);
                bool toScalar = conversion.IsImplicit && conversion.IsUserDefined
                    && SymbolEqualityComparer.Default.Equals(model.GetTypeInfo(expression).ConvertedType, scalar);
                // TorchSharp's own operators on a tensor and a C# number (tensor * 0.5) make the Scalar inside TorchSharp.
                bool numberOperator = expression is BinaryExpressionSyntax or AssignmentExpressionSyntax
                    && model.GetSymbolInfo(expression).Symbol is IMethodSymbol { MethodKind: MethodKind.UserDefinedOperator } op
                    && op.ContainingAssembly?.Name == "TorchSharp"
                    && op.Parameters.Any(p => p.Type.SpecialType is >= SpecialType.System_SByte and <= SpecialType.System_Double);
                // TorchSharp members that build a Scalar inside without a number from us (a + b passes alpha = 1).
                bool hiddenScalar = expression is InvocationExpressionSyntax or BinaryExpressionSyntax or AssignmentExpressionSyntax
                    && model.GetSymbolInfo(expression).Symbol is IMethodSymbol called
                    && called.ContainingAssembly?.Name == "TorchSharp"
                    && hidden.Contains(Key(called.ReducedFrom ?? called));
                if (!toScalar && !numberOperator && !hiddenScalar) continue;
                var line = tree.GetLineSpan(expression.Span).StartLinePosition.Line + 1;
                found.Add($"{Path.GetRelativePath(source, tree.FilePath)}:{line}: {expression}");
            }
        }
        Assert.True(found.Count == 0, $"{found.Count} implicit number → Scalar conversion(s):\n" + string.Join("\n", found));
    }

    /// <summary>
    /// The public TorchSharp members that make a <c>Scalar</c> inside — directly through its implicit conversions or
    /// <c>ToScalar</c>, or through another such member — read from TorchSharp's IL, so an upgrade is checked too.
    /// </summary>
    private static HashSet<string> TorchSharpMembersThatMakeScalars()
    {
        var assembly = typeof(TorchSharp.Scalar).Assembly;
        var module = assembly.ManifestModule;
        const System.Reflection.BindingFlags declared = System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic
            | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.DeclaredOnly;
        Type[] types;
        try
        {
            types = assembly.GetTypes();
        }
        catch (System.Reflection.ReflectionTypeLoadException e)
        {
            types = [.. e.Types.OfType<Type>()]; // types built on optional packages (SkiaSharp, protobuf) are not needed
        }
        var callees = new Dictionary<System.Reflection.MethodBase, List<System.Reflection.MethodBase>>();
        var making = new HashSet<System.Reflection.MethodBase>();
        foreach (var method in types.Where(t => t != typeof(TorchSharp.Scalar)).SelectMany(t => t.GetMethods(declared).Cast<System.Reflection.MethodBase>().Concat(t.GetConstructors(declared))))
        {
            byte[]? il = method.GetMethodBody()?.GetILAsByteArray();
            if (il is null) continue;
            var list = new List<System.Reflection.MethodBase>();
            // call (0x28) and callvirt (0x6F) followed by a method token; a stray match only adds a callee that
            // resolves to a real method, which can over-report but never hide one.
            for (int i = 0; i + 4 < il.Length; i++)
            {
                if (il[i] is not (0x28 or 0x6F)) continue;
                int token = BitConverter.ToInt32(il, i + 1);
                if ((token >>> 24) is not (0x06 or 0x0A or 0x2B)) continue;
                try
                {
                    var callee = module.ResolveMethod(token, method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null,
                        method.IsGenericMethod ? method.GetGenericArguments() : null);
                    if (callee is null) continue;
                    list.Add(callee);
                    if (callee.DeclaringType == typeof(TorchSharp.Scalar) && callee.Name == "op_Implicit" || callee.Name == "ToScalar") making.Add(method);
                }
                catch (ArgumentException)
                {
                }
                catch (BadImageFormatException)
                {
                }
            }
            callees[method] = list;
        }
        for (bool grew = true; grew;)
        {
            grew = false;
            foreach (var (method, list) in callees)
                if (!making.Contains(method) && list.Any(making.Contains)) grew = making.Add(method) || grew;
        }
        return [.. making.Where(m => m.IsPublic).Select(m => $"{m.DeclaringType!.Name}.{m.Name}({string.Join(",", m.GetParameters().Select(p => p.ParameterType.Name))})")];
    }

    private static string Key(IMethodSymbol method)
    {
        var definition = method.OriginalDefinition;
        static string Name(ITypeSymbol type) => type is IArrayTypeSymbol array ? Name(array.ElementType) + "[]" : type.MetadataName;
        return $"{definition.ContainingType.MetadataName}.{definition.MetadataName}({string.Join(",", definition.Parameters.Select(p => Name(p.Type)))})";
    }

    // The SDK's implicit usings for a library project (what obj/…/BioForge.GlobalUsings.g.cs holds).
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    private static bool IsManaged(string path)
    {
        try
        {
            System.Reflection.AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }
}
