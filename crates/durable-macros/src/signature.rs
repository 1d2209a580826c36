//! Checking the signature of a `#[task]` function: the state parameter, the arguments that
//! become fields, the header and the return type.

use quote::ToTokens;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Signature,
    Type,
};

/// How the first parameter receives the state.
pub(crate) enum StateParam {
    /// `state: S`: a clone of the registered state.
    Value,
    /// `state: &S`: a reference to the registered state.
    Ref,
    /// `cx: TaskContext<S>`: the whole context.
    Context,
    /// `cx: &TaskContext<S>`: a reference to the context.
    ContextRef,
}

/// One argument of the task: a field of the generated struct.
pub(crate) struct Field {
    /// The parameter's name, also the field's.
    pub(crate) ident: Ident,
    /// Its type.
    pub(crate) ty: Type,
    /// `#[serde(...)]` attributes moved from the parameter to the field.
    pub(crate) serde_attrs: Vec<Attribute>,
}

/// The checked signature.
pub(crate) struct Analysis {
    pub(crate) state_param: StateParam,
    pub(crate) state_ty: Type,
    pub(crate) fields: Vec<Field>,
}

/// Checks the signature and strips the parameter attributes the macro consumes.
pub(crate) fn analyze(func: &mut ItemFn) -> syn::Result<Analysis> {
    let mut errors = Errors::default();
    check_header(&func.sig, &mut errors);

    let sig = &mut func.sig;
    let mut inputs = sig.inputs.iter_mut();
    let Some(first) = inputs.next() else {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            missing_state_message(None),
        ));
        return Err(errors.finish().expect("an error was pushed"));
    };

    let mut state = None;
    match first {
        FnArg::Receiver(receiver) => errors.push(self_error(receiver)),
        FnArg::Typed(pat_type) => {
            for attr in &pat_type.attrs {
                if attr.path().is_ident("serde") {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        "`#[serde]` attributes belong on task arguments, not on the state \
                         (first) parameter",
                    ));
                }
            }
            match analyze_state(&pat_type.ty) {
                Ok(found) => state = Some(found),
                Err(e) => errors.push(e),
            }
        }
    }

    let mut fields = Vec::new();
    for input in inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(self_error(receiver)),
            FnArg::Typed(pat_type) => {
                let (serde_attrs, kept): (Vec<Attribute>, Vec<Attribute>) =
                    std::mem::take(&mut pat_type.attrs)
                        .into_iter()
                        .partition(|attr| attr.path().is_ident("serde"));
                pat_type.attrs = kept;
                for attr in &pat_type.attrs {
                    if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                        errors.push(syn::Error::new_spanned(
                            attr,
                            "`#[cfg]` on a task argument is not supported: the stored task \
                             must have the same fields in every build",
                        ));
                    }
                }
                let ident = match &*pat_type.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        Some(pat.ident.clone())
                    }
                    other => {
                        errors.push(syn::Error::new_spanned(
                            other,
                            "a task argument must be a plain name like `user_id: i64`: it \
                             becomes a field of the stored task (destructure it inside the \
                             function instead)",
                        ));
                        None
                    }
                };
                if let Err(e) = check_owned(&pat_type.ty) {
                    errors.push(e);
                }
                if let Some(ident) = ident {
                    fields.push(Field {
                        ident,
                        ty: (*pat_type.ty).clone(),
                        serde_attrs,
                    });
                }
            }
        }
    }

    check_output(&sig.output, &mut errors);

    if let Some(e) = errors.finish() {
        return Err(e);
    }
    let (state_param, state_ty) = state.expect("no error, so the state was analyzed");
    Ok(Analysis {
        state_param,
        state_ty,
        fields,
    })
}

/// `async`, no generics, no `unsafe`/`extern`/`const`.
fn check_header(sig: &Signature, errors: &mut Errors) {
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(
            token.span,
            "`#[task]` cannot be used on a `const fn`",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "`#[task]` must be placed on an `async fn`: write `async fn` (the task runs \
             the function's future)",
        ));
    }
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new(
            token.span,
            "`#[task]` cannot be used on an `unsafe fn`: the runtime calls it with no way to \
             uphold its safety contract",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[task]` cannot be used on an `extern` function",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "`#[task]` functions cannot be generic: a stored task is decoded into one concrete \
             type, so use concrete parameter types (and no lifetime parameters)",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[task]` functions cannot be variadic",
        ));
    }
}

fn self_error(receiver: &syn::Receiver) -> syn::Error {
    syn::Error::new_spanned(
        receiver,
        "`#[task]` must be placed on a free `async fn`, not a method: `self` cannot be stored \
         in a task; take the state as the first parameter instead",
    )
}

fn missing_state_message(first_ty: Option<&str>) -> String {
    let lead = match first_ty {
        None => "missing state parameter".to_owned(),
        Some(ty) => format!(
            "missing state parameter: the first parameter of a `#[task]` function is the \
             application state, and `{ty}` looks like a task argument"
        ),
    };
    format!(
        "{lead}; add the state first, e.g. `async fn my_task(state: AppState, user_id: i64)`, \
         or `cx: TaskContext<AppState>` for the whole context (use `_: ()` if the task needs \
         no state)"
    )
}

/// Types that are never an application state: a first parameter of one of these is a task
/// argument whose state parameter was forgotten.
const ARGUMENT_LIKE: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "f32",
    "f64", "bool", "char", "str", "String",
];

/// Classifies the first parameter and returns the state type.
fn analyze_state(ty: &Type) -> syn::Result<(StateParam, Type)> {
    let (by_ref, inner) = match ty {
        Type::Reference(reference) => {
            if let Some(lifetime) = &reference.lifetime {
                return Err(syn::Error::new_spanned(
                    lifetime,
                    "remove this lifetime: a `#[task]` function borrows the state for the \
                     duration of the call, `&State` is enough",
                ));
            }
            if reference.mutability.is_some() {
                return Err(syn::Error::new_spanned(
                    reference,
                    "the state cannot be borrowed mutably (it is shared by every run): take \
                     `State` or `&State`, and use interior mutability inside it",
                ));
            }
            (true, &*reference.elem)
        }
        other => (false, other),
    };
    if let Type::Path(path) = inner {
        if path.qself.is_none() {
            if let Some(last) = path.path.segments.last() {
                if last.ident == "TaskContext" {
                    let state = match &last.arguments {
                        PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
                            match &args.args[0] {
                                GenericArgument::Type(state) => Some(state.clone()),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    let Some(state) = state else {
                        return Err(syn::Error::new_spanned(
                            last,
                            "name the state type of the context: `TaskContext<AppState>` \
                             (or `TaskContext<()>`)",
                        ));
                    };
                    let kind = if by_ref {
                        StateParam::ContextRef
                    } else {
                        StateParam::Context
                    };
                    return Ok((kind, state));
                }
                if path.path.segments.len() == 1
                    && last.arguments.is_empty()
                    && ARGUMENT_LIKE.iter().any(|t| last.ident == t)
                {
                    return Err(syn::Error::new_spanned(
                        ty,
                        missing_state_message(Some(&ty.to_token_stream().to_string())),
                    ));
                }
            }
        }
    }
    check_state_type(inner)?;
    let kind = if by_ref {
        StateParam::Ref
    } else {
        StateParam::Value
    };
    Ok((kind, inner.clone()))
}

/// A task argument must be an owned, nameable type: it is stored as JSON.
fn check_owned(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::Reference(reference) => {
            let owned = match &*reference.elem {
                Type::Path(p) if p.path.is_ident("str") => "String".to_owned(),
                Type::Slice(slice) => format!("Vec<{}>", slice.elem.to_token_stream()),
                other => other.to_token_stream().to_string(),
            };
            Err(syn::Error::new_spanned(
                ty,
                format!(
                    "task arguments cannot be references: they are stored as JSON and decoded \
                     later, so take an owned value (`{owned}`)"
                ),
            ))
        }
        Type::ImplTrait(_) => Err(syn::Error::new_spanned(
            ty,
            "task arguments cannot be `impl Trait`: a stored task is decoded into one concrete \
             type",
        )),
        Type::Infer(_) => Err(syn::Error::new_spanned(ty, "write the argument's type")),
        Type::Paren(inner) => check_owned(&inner.elem),
        Type::Group(inner) => check_owned(&inner.elem),
        Type::Tuple(tuple) => tuple.elems.iter().try_for_each(check_owned),
        Type::Array(array) => check_owned(&array.elem),
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_owned(&qself.ty)?;
            }
            for segment in &path.path.segments {
                if let PathArguments::AngleBracketed(args) = &segment.arguments {
                    for arg in &args.args {
                        match arg {
                            GenericArgument::Type(inner) => check_owned(inner)?,
                            GenericArgument::Lifetime(lifetime) if lifetime.ident != "static" => {
                                return Err(syn::Error::new_spanned(
                                    lifetime,
                                    "task arguments cannot borrow: they are stored as JSON and \
                                     decoded later, so use owned types (or `'static`)",
                                ));
                            }
                            _ => {}
                        }
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The state type must be nameable: no `impl Trait`.
fn check_state_type(ty: &Type) -> syn::Result<()> {
    match ty {
        Type::ImplTrait(_) => Err(syn::Error::new_spanned(
            ty,
            "the state cannot be `impl Trait`: name the registered state type",
        )),
        _ => Ok(()),
    }
}

/// `()`, nothing, or a `...Result<(), E>`-like path.
fn check_output(output: &ReturnType, errors: &mut Errors) {
    let ReturnType::Type(_, ty) = output else {
        return;
    };
    let help = "a `#[task]` function must return `()` or `Result<(), E>` where `E: Display` \
                (its `Ok` value would have nowhere to go)";
    match &**ty {
        Type::Tuple(tuple) if tuple.elems.is_empty() => {}
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return;
            };
            if !last.ident.to_string().ends_with("Result") {
                errors.push(syn::Error::new_spanned(ty, help));
                return;
            }
            // `Result<(), E>`, `io::Result<()>`, `anyhow::Result<()>`: the first argument,
            // when written, must be `()`.
            if let PathArguments::AngleBracketed(args) = &last.arguments {
                if let Some(GenericArgument::Type(ok)) = args.args.first() {
                    let is_unit = matches!(ok, Type::Tuple(t) if t.elems.is_empty());
                    if !is_unit {
                        errors.push(syn::Error::new_spanned(
                            ok,
                            "a `#[task]` function must return `Result<(), E>`: the `Ok` value of \
                             a task is discarded, so return `()` here",
                        ));
                    }
                }
            }
        }
        _ => errors.push(syn::Error::new_spanned(ty, help)),
    }
}

/// Collects several errors to report them at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> Option<syn::Error> {
        self.0
    }
}
