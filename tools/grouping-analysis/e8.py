from ev import *
import pickle
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
S=np.load('F_0.6_3.0.npy'); np.fill_diagonal(S,-1)
rng=np.random.default_rng(0)
same=(ref[:,None]==ref[None,:]); iu=np.triu_indices(len(S),1)
miss=np.array([(i,j) for i,j in zip(*iu) if same[i,j] and S[i,j]<0.85]); rng.shuffle(miss); miss=miss[:300]
# hard negatives: same class, different ref, high sim
cl=labels[:,None]==labels[None,:]
neg_mask=(~same)&cl; negs=np.array([(i,j) for i,j in zip(*iu) if neg_mask[i,j] and S[i,j]>0.6]); 
print('neg candidates',len(negs)); rng.shuffle(negs); negs=negs[:600]
def warp(img, s, rot, mirror):
    x=img[:,::-1] if mirror else img
    n=32; c=(n-1)/2; th=np.deg2rad(rot); R=np.array([[np.cos(th),-np.sin(th)],[np.sin(th),np.cos(th)]])/s
    return ndi.affine_transform(x, R, offset=c-R@np.array([c,c]), order=1, mode='constant', cval=0)
def reg_sim(a,b,scales=np.arange(0.7,1.45,0.05),rots=(-10,-5,0,5,10),maxshift=4):
    A=std(lcn(a[None])[0].reshape(1,-1)).reshape(32,32)
    FA=np.conj(np.fft.rfft2(A,(64,64)))
    best=-1
    for s in scales:
        for r in rots:
            for m in (False,True):
                B=std(lcn(warp(b,s,r,m)[None])[0].reshape(1,-1)).reshape(32,32)
                cc=np.fft.irfft2(FA*np.fft.rfft2(B,(64,64)),(64,64))
                # shift window
                w=np.concatenate([cc[:maxshift+1],cc[-maxshift:]],0); w=np.concatenate([w[:,:maxshift+1],w[:,-maxshift:]],1)
                best=max(best,w.max())
    return best
t0=time.time()
rm=np.array([reg_sim(T[i],T[j]) for i,j in miss[:150]]); print('miss', time.time()-t0)
rn=np.array([reg_sim(T[i],T[j]) for i,j in negs[:300]])
print('missed ref pairs: base', np.quantile([S[i,j] for i,j in miss[:150]],[0.1,0.25,0.5,0.75,0.9]).round(3),' reg', np.quantile(rm,[0.1,0.25,0.5,0.75,0.9]).round(3))
print('hard negs: base', np.quantile([S[i,j] for i,j in negs[:300]],[0.5,0.9,0.99,1]).round(3),' reg', np.quantile(rn,[0.5,0.9,0.95,0.99,1]).round(3))
for t in [0.8,0.85,0.9]: print(t, 'miss recovered', (rm>=t).mean(), 'neg fp', (rn>=t).mean())
